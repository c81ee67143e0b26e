//! Bad checkpoints give errors that name the file, tensor or key, never panics.

mod common;

use std::collections::HashMap;
use std::path::Path;

use cdr_models::backend::Cpu;
use cdr_models::{LoadOptions, ModelDir, ModelError};
use common::fixture_dir;
use safetensors::{Dtype, SafeTensors, tensor::TensorView};

/// A copy of fixture `name` in a temporary directory.
fn copy_fixture(name: &str) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(fixture_dir(name)).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), tmp.path().join(entry.file_name())).unwrap();
    }
    tmp
}

fn load(dir: &Path) -> Result<(), ModelError> {
    ModelDir::new(dir)
        .load::<Cpu>(&Default::default(), LoadOptions::default())
        .map(|_| ())
}

/// Rewrites `file`, letting `edit` drop or replace tensors.
fn rewrite(file: &Path, edit: impl Fn(&str, Vec<usize>, Vec<u8>) -> Option<(Vec<usize>, Vec<u8>)>) {
    let bytes = std::fs::read(file).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let mut kept: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = Vec::new();
    for (name, view) in st.tensors() {
        if let Some((shape, data)) = edit(&name, view.shape().to_vec(), view.data().to_vec()) {
            kept.push((name, view.dtype(), shape, data));
        }
    }
    let views: HashMap<String, TensorView<'_>> = kept
        .iter()
        .map(|(n, d, s, b)| (n.clone(), TensorView::new(*d, s.clone(), b).unwrap()))
        .collect();
    safetensors::serialize_to_file(&views, None, file).unwrap();
}

#[test]
fn missing_tensor_is_named() {
    let tmp = copy_fixture("llama_gqa");
    let target = "model.layers.1.mlp.up_proj.weight";
    rewrite(
        &tmp.path().join("model.safetensors"),
        |name, shape, data| (name != target).then_some((shape, data)),
    );
    let err = load(tmp.path()).unwrap_err();
    assert!(matches!(err, ModelError::MissingTensor { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains(target) && msg.contains("model.safetensors"),
        "{msg}"
    );
}

#[test]
fn wrong_shape_is_named_with_both_shapes() {
    let tmp = copy_fixture("llama_gqa");
    let target = "model.layers.0.self_attn.k_proj.weight";
    rewrite(
        &tmp.path().join("model.safetensors"),
        |name, shape, data| {
            if name == target {
                // Same bytes, rows and columns swapped: a transposed export.
                Some((vec![shape[1], shape[0]], data))
            } else {
                Some((shape, data))
            }
        },
    );
    let msg = load(tmp.path()).unwrap_err().to_string();
    assert!(
        msg.contains(target) && msg.contains("[16, 64]") && msg.contains("[64, 16]"),
        "{msg}"
    );
}

#[test]
fn truncated_file_is_an_error_naming_the_file() {
    for cut in [1, 100, 4096] {
        let tmp = copy_fixture("llama_gqa");
        let file = tmp.path().join("model.safetensors");
        let len = std::fs::metadata(&file).unwrap().len();
        let f = std::fs::OpenOptions::new().write(true).open(&file).unwrap();
        f.set_len(len - cut).unwrap();
        let err = load(tmp.path()).unwrap_err();
        assert!(matches!(err, ModelError::Checkpoint { .. }), "{err:?}");
        assert!(err.to_string().contains("model.safetensors"), "{err}");
    }
    // Cut inside the header itself.
    let tmp = copy_fixture("llama_gqa");
    let file = tmp.path().join("model.safetensors");
    std::fs::OpenOptions::new()
        .write(true)
        .open(&file)
        .unwrap()
        .set_len(20)
        .unwrap();
    assert!(
        load(tmp.path())
            .unwrap_err()
            .to_string()
            .contains("model.safetensors")
    );
}

#[test]
fn garbage_file_is_an_error() {
    let tmp = copy_fixture("llama_gqa");
    std::fs::write(
        tmp.path().join("model.safetensors"),
        b"\xff\xff\xff\xff\xff\xff\xff\x7fnot a checkpoint",
    )
    .unwrap();
    let err = load(tmp.path()).unwrap_err();
    assert!(err.to_string().contains("model.safetensors"), "{err}");
}

#[test]
fn missing_config_field_is_named() {
    let tmp = copy_fixture("llama_gqa");
    let path = tmp.path().join("config.json");
    let mut config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    config.as_object_mut().unwrap().remove("num_hidden_layers");
    std::fs::write(&path, config.to_string()).unwrap();
    let msg = load(tmp.path()).unwrap_err().to_string();
    assert!(
        msg.contains("num_hidden_layers") && msg.contains("config.json"),
        "{msg}"
    );
}

#[test]
fn unknown_model_type_is_named() {
    let tmp = copy_fixture("llama_gqa");
    let path = tmp.path().join("config.json");
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace("\"llama\"", "\"falcon\"");
    std::fs::write(&path, text).unwrap();
    let msg = load(tmp.path()).unwrap_err().to_string();
    assert!(
        msg.contains("falcon") && msg.contains("config.json"),
        "{msg}"
    );
}

#[test]
fn missing_shard_is_named() {
    let tmp = copy_fixture("llama_sharded");
    std::fs::remove_file(tmp.path().join("model-00002-of-00002.safetensors")).unwrap();
    let msg = load(tmp.path()).unwrap_err().to_string();
    assert!(msg.contains("model-00002-of-00002.safetensors"), "{msg}");
}

#[test]
fn index_naming_a_tensor_its_shard_lacks_is_an_error() {
    let tmp = copy_fixture("llama_sharded");
    let shard = tmp.path().join("model-00002-of-00002.safetensors");
    rewrite(&shard, |name, shape, data| {
        (name != "model.norm.weight").then_some((shape, data))
    });
    let msg = load(tmp.path()).unwrap_err().to_string();
    assert!(msg.contains("model.norm.weight"), "{msg}");
}

#[test]
fn empty_directory_says_what_is_missing() {
    let tmp = tempfile::tempdir().unwrap();
    let msg = load(tmp.path()).unwrap_err().to_string();
    assert!(msg.contains("config.json"), "{msg}");
    std::fs::copy(
        fixture_dir("llama_gqa").join("config.json"),
        tmp.path().join("config.json"),
    )
    .unwrap();
    let msg = load(tmp.path()).unwrap_err().to_string();
    assert!(msg.contains("model.safetensors"), "{msg}");
}

#[test]
fn missing_tokenizer_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let msg = ModelDir::new(tmp.path())
        .tokenizer()
        .unwrap_err()
        .to_string();
    assert!(msg.contains("tokenizer.json"), "{msg}");
}
