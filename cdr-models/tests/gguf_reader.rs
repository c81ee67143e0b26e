//! GGUF parsing: header, every metadata value type, tensor directory; and corrupt, truncated or
//! hostile files, which must give errors, never panics or huge allocations.

mod gguf_common;

use std::path::Path;

use cdr_models::ModelError;
use cdr_models::gguf::{
    GgmlType, GgufFile, GgufWeights, MetadataArray, MetadataValue, config_from_gguf,
};
use cdr_models::weights::{ComputeDtype, WeightSource, convert};
use gguf_common::{Builder, Rng, gguf_fixture, put_str, put_u32, put_u64};

fn open_bytes(bytes: &[u8]) -> Result<GgufFile, ModelError> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.gguf");
    std::fs::write(&path, bytes).unwrap();
    GgufFile::open(&path)
}

fn open_err(bytes: &[u8]) -> String {
    match open_bytes(bytes) {
        Ok(f) => panic!("expected an error, parsed {f:?}"),
        Err(e) => {
            assert!(matches!(e, ModelError::Checkpoint { .. }), "{e:?}");
            e.to_string()
        }
    }
}

/// A small file with one of every value type, nested arrays and three tensors.
fn sample() -> Builder {
    use MetadataArray as A;
    use MetadataValue as V;
    Builder::new()
        .kv("general.architecture", V::String("llama".into()))
        .kv("u8", V::U8(200))
        .kv("i8", V::I8(-5))
        .kv("u16", V::U16(60000))
        .kv("i16", V::I16(-30000))
        .kv("u32", V::U32(4_000_000_000))
        .kv("i32", V::I32(-7))
        .kv("u64", V::U64(1 << 40))
        .kv("i64", V::I64(12))
        .kv("f32", V::F32(1.5e-5))
        .kv("f64", V::F64(-2.25))
        .kv("bool", V::Bool(true))
        .kv("string", V::String("héllo".into()))
        .kv("empty", V::String(String::new()))
        .kv(
            "strings",
            V::Array(A::String(vec!["a".into(), "Ġb".into(), "".into()])),
        )
        .kv("ints", V::Array(A::I32(vec![-1, 0, 3])))
        .kv("bytes", V::Array(A::U8(vec![1, 2, 255])))
        .kv("floats", V::Array(A::F64(vec![0.5, -1.25])))
        .kv("bools", V::Array(A::Bool(vec![true, false])))
        .kv(
            "nested",
            V::Array(A::Array(vec![
                A::U16(vec![1, 2]),
                A::String(vec!["x".into()]),
                A::Array(vec![A::I64(vec![-9])]),
            ])),
        )
        .kv("general.alignment", V::U32(64))
        .f32_tensor("a", &[3, 2], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
        .tensor(
            "b",
            &[4],
            GgmlType::F16,
            [1.0f32, -2.0, 0.5, 65504.0]
                .iter()
                .flat_map(|&v| half::f16::from_f32(v).to_le_bytes())
                .collect(),
        )
        .f32_tensor("c", &[2, 1, 3], &[0.0; 6])
}

#[test]
fn every_value_type_round_trips() {
    let bytes = sample().build();
    let f = open_bytes(&bytes).unwrap();
    assert_eq!(f.version(), 3);
    assert_eq!(f.alignment(), 64);
    assert_eq!(f.data_offset() % 64, 0);
    assert_eq!(f.file_len(), bytes.len());
    assert_eq!(f.architecture().unwrap(), "llama");
    // Every entry comes back exactly, in file order.
    let want = sample().metadata;
    let got: Vec<(String, MetadataValue)> = f
        .metadata()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    assert_eq!(got, want);

    // Integer getters accept any integer type that fits.
    assert_eq!(f.get_u32("u8").unwrap(), Some(200));
    assert_eq!(f.get_u32("u16").unwrap(), Some(60000));
    assert_eq!(f.get_u32("u32").unwrap(), Some(4_000_000_000));
    assert_eq!(f.get_u32("i64").unwrap(), Some(12));
    assert_eq!(f.get_u64("u64").unwrap(), Some(1 << 40));
    assert!(f.get_u32("u64").is_err(), "2^40 does not fit in u32");
    assert!(f.get_u32("i8").is_err(), "negative");
    assert!(f.get_u32("string").is_err(), "wrong type");
    assert_eq!(f.get_u32("absent").unwrap(), None);
    assert_eq!(f.get_f32("f32").unwrap(), Some(1.5e-5));
    assert_eq!(f.get_f32("f64").unwrap(), Some(-2.25));
    assert_eq!(f.get_f32("i32").unwrap(), Some(-7.0));
    assert!(f.get_f32("strings").is_err());
    assert_eq!(f.get_bool("bool").unwrap(), Some(true));
    assert_eq!(f.get_str("string").unwrap(), Some("héllo"));
    assert_eq!(f.get_str("empty").unwrap(), Some(""));
    let err = f.get_str("u8").unwrap_err().to_string();
    assert!(err.contains("`u8`") && err.contains("x.gguf"), "{err}");
    assert_eq!(
        f.get_str_array("strings").unwrap().unwrap(),
        &["a".to_string(), "Ġb".into(), "".into()]
    );
    assert!(f.get_str_array("ints").is_err());
    assert_eq!(f.get_i64_array("ints").unwrap(), Some(vec![-1, 0, 3]));
    assert_eq!(f.get_i64_array("bytes").unwrap(), Some(vec![1, 2, 255]));
    assert!(f.get_u32_array("ints").is_err(), "negative element");
    assert_eq!(f.get_u32_array("bytes").unwrap(), Some(vec![1, 2, 255]));
    assert_eq!(f.get_f32_array("floats").unwrap(), Some(vec![0.5, -1.25]));
    assert_eq!(f.get_f32_array("ints").unwrap(), Some(vec![-1.0, 0.0, 3.0]));
    assert!(f.get_f32_array("strings").is_err());
    assert_eq!(f.get("nested").unwrap().type_name(), "array<array>");

    // Tensors: GGUF dims are fastest-first; shapes are row-major.
    let names: Vec<&str> = f.tensors().iter().map(|t| t.name()).collect();
    assert_eq!(names, ["a", "b", "c"]);
    let a = f.tensor("a").unwrap();
    assert_eq!(a.dims(), &[3, 2]);
    assert_eq!(a.shape(), vec![2, 3]);
    assert_eq!(a.n_elements(), 6);
    assert_eq!(a.n_bytes(), Some(24));
    assert_eq!(a.offset(), 0);
    assert_eq!(f.tensor("c").unwrap().shape(), vec![3, 1, 2]);
    let b = f.tensor("b").unwrap();
    assert_eq!(b.ggml_type(), GgmlType::F16);
    assert_eq!(b.offset() % 64, 0);
    assert_eq!(
        f.dequantize("b").unwrap().unwrap(),
        vec![1.0, -2.0, 0.5, 65504.0]
    );
    assert_eq!(
        f.dequantize("a").unwrap().unwrap(),
        vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    );
    assert!(f.dequantize("missing").unwrap().is_none());
    assert!(f.tensor("missing").is_none());
}

#[test]
fn version_2_and_invalid_utf8_values_are_accepted() {
    let mut b = sample();
    b.version = 2;
    assert_eq!(open_bytes(&b.build()).unwrap().version(), 2);

    // A string value that is not UTF-8 is decoded lossily (llama.cpp accepts such files).
    let mut bytes = b"GGUF".to_vec();
    put_u32(&mut bytes, 3);
    put_u64(&mut bytes, 0);
    put_u64(&mut bytes, 1);
    put_str(&mut bytes, b"k");
    put_u32(&mut bytes, 8);
    put_str(&mut bytes, b"a\xffb");
    let f = open_bytes(&bytes).unwrap();
    assert_eq!(f.get_str("k").unwrap(), Some("a\u{fffd}b"));
    assert!(f.tensors().is_empty());
    assert_eq!(f.alignment(), 32);
}

#[test]
fn fixtures_parse() {
    let f = GgufFile::open(gguf_fixture("llama_gqa.f32.gguf")).unwrap();
    assert_eq!((f.version(), f.alignment()), (3, 32));
    assert_eq!(f.data_offset() % 32, 0);
    assert_eq!(f.architecture().unwrap(), "llama");
    assert_eq!(f.get_u32("llama.block_count").unwrap(), Some(2));
    assert_eq!(f.get_u32("llama.embedding_length").unwrap(), Some(64));
    assert_eq!(f.get_u32("llama.attention.head_count").unwrap(), Some(8));
    assert_eq!(f.get_u32("llama.attention.head_count_kv").unwrap(), Some(2));
    assert_eq!(f.get_u32("llama.rope.dimension_count").unwrap(), Some(8));
    assert_eq!(f.get_f32("llama.rope.freq_base").unwrap(), Some(10000.0));
    assert_eq!(
        f.get_f32("llama.attention.layer_norm_rms_epsilon").unwrap(),
        Some(1e-5)
    );
    assert_eq!(f.get_str("tokenizer.ggml.model").unwrap(), Some("gpt2"));
    let tokens = f.get_str_array("tokenizer.ggml.tokens").unwrap().unwrap();
    assert_eq!(tokens.len(), 384);
    assert_eq!(
        &tokens[..5],
        ["<s>", "</s>", "<pad>", "<|im_start|>", "<|im_end|>"]
    );
    let types = f
        .get_i64_array("tokenizer.ggml.token_type")
        .unwrap()
        .unwrap();
    assert_eq!(types.len(), 384);
    assert!(types[..11].iter().all(|&t| t == 3) && types[11..].iter().all(|&t| t == 1));
    assert_eq!(
        f.get_str_array("tokenizer.ggml.merges")
            .unwrap()
            .unwrap()
            .len(),
        117
    );
    assert_eq!(f.get_u32("tokenizer.ggml.bos_token_id").unwrap(), Some(0));
    assert_eq!(f.get_u32("tokenizer.ggml.eos_token_id").unwrap(), Some(4));

    assert_eq!(f.tensors().len(), 3 + 2 * 9);
    let q = f.tensor("blk.0.attn_q.weight").unwrap();
    assert_eq!((q.dims(), q.shape()), (&[64u64, 64][..], vec![64, 64]));
    let k = f.tensor("blk.1.attn_k.weight").unwrap();
    assert_eq!((k.dims(), k.shape()), (&[64u64, 16][..], vec![16, 64]));
    let down = f.tensor("blk.0.ffn_down.weight").unwrap();
    assert_eq!(down.shape(), vec![64, 160]);
    assert_eq!(
        f.tensor("token_embd.weight").unwrap().shape(),
        vec![384, 64]
    );
    assert!(f.tensors().iter().all(|t| t.ggml_type() == GgmlType::F32));

    let m = GgufFile::open(gguf_fixture("llama_gqa.mixed.gguf")).unwrap();
    let ty = |n: &str| m.tensor(n).unwrap().ggml_type();
    assert_eq!(ty("token_embd.weight"), GgmlType::Q8_0);
    assert_eq!(ty("blk.0.attn_q.weight"), GgmlType::Q4_0);
    assert_eq!(ty("blk.0.attn_k.weight"), GgmlType::Q5_0);
    assert_eq!(ty("blk.0.attn_v.weight"), GgmlType::Q4_1);
    assert_eq!(ty("blk.0.attn_output.weight"), GgmlType::Q5_1);
    assert_eq!(ty("blk.0.ffn_up.weight"), GgmlType::BF16);
    assert_eq!(ty("blk.0.ffn_down.weight"), GgmlType::F16);
    assert_eq!(ty("blk.0.attn_norm.weight"), GgmlType::F32);

    let q8 = GgufFile::open(gguf_fixture("qwen2_tiny.q8_0.gguf")).unwrap();
    assert_eq!(q8.architecture().unwrap(), "qwen2");
    assert_eq!(q8.alignment(), 64);
    assert_eq!(q8.data_offset() % 64, 0);
    assert!(q8.tensors().iter().all(|t| t.offset() % 64 == 0));
    assert_eq!(
        q8.tensor("blk.0.attn_q.bias").unwrap().ggml_type(),
        GgmlType::F32
    );
    assert!(q8.tensor("output.weight").is_none());
}

/// A header followed by raw bytes, for hand-made corruptions.
fn header(tensors: u64, kvs: u64) -> Vec<u8> {
    let mut out = b"GGUF".to_vec();
    put_u32(&mut out, 3);
    put_u64(&mut out, tensors);
    put_u64(&mut out, kvs);
    out
}

#[test]
fn hostile_headers_are_errors() {
    let padding = vec![0u8; 256];

    // Absurd counts are rejected before anything is allocated.
    let mut b = header(1 << 60, 0);
    b.extend_from_slice(&padding);
    assert!(open_err(&b).contains("tensor count"));
    let mut b = header(0, 1 << 60);
    b.extend_from_slice(&padding);
    assert!(open_err(&b).contains("metadata count"));
    let mut b = header(0, u64::MAX);
    b.extend_from_slice(&padding);
    open_err(&b);

    // A key or string longer than the file.
    let mut b = header(0, 1);
    put_u64(&mut b, 1 << 63);
    b.extend_from_slice(&padding);
    assert!(open_err(&b).contains("string length"));
    let mut b = header(0, 1);
    put_str(&mut b, b"k");
    put_u32(&mut b, 8);
    put_u64(&mut b, u64::MAX);
    open_err(&b);

    // Arrays: absurd counts, for fixed-size and string elements and nested arrays.
    for (ty, count) in [
        (0u32, 1u64 << 62),
        (8, 1 << 40),
        (9, 1 << 50),
        (12, u64::MAX / 8 + 1),
    ] {
        let mut b = header(0, 1);
        put_str(&mut b, b"arr");
        put_u32(&mut b, 9);
        put_u32(&mut b, ty);
        put_u64(&mut b, count);
        b.extend_from_slice(&padding);
        assert!(open_err(&b).contains("count"), "array of type {ty}");
    }
    // Arrays nested deeper than any real file.
    let mut b = header(0, 1);
    put_str(&mut b, b"deep");
    put_u32(&mut b, 9);
    for _ in 0..100 {
        put_u32(&mut b, 9);
        put_u64(&mut b, 1);
    }
    b.extend_from_slice(&padding);
    assert!(open_err(&b).contains("nested"));

    // Unknown value type, invalid bool, bad UTF-8 key, duplicate key.
    for (ty, value) in [(13u32, vec![0u8; 8]), (7, vec![2u8])] {
        let mut b = header(0, 1);
        put_str(&mut b, b"k");
        put_u32(&mut b, ty);
        b.extend_from_slice(&value);
        open_err(&b);
    }
    let mut b = header(0, 1);
    put_str(&mut b, b"\xff\xfe");
    put_u32(&mut b, 0);
    b.push(1);
    assert!(open_err(&b).contains("UTF-8"));
    let mut b = header(0, 2);
    for _ in 0..2 {
        put_str(&mut b, b"k");
        put_u32(&mut b, 0);
        b.push(1);
    }
    assert!(open_err(&b).contains("twice"));

    // Magic and version.
    assert!(open_err(b"GGUF").contains("truncated"));
    assert!(open_err(b"GGML\x03\0\0\0").contains("not a GGUF"));
    assert!(open_err(&[0u8; 64]).contains("not a GGUF"));
    assert!(open_err(b"").contains("empty"));
    let mut b = b"GGUF".to_vec();
    put_u32(&mut b, 1);
    b.extend_from_slice(&padding);
    assert!(open_err(&b).contains("version 1"));
    let mut b = b"GGUF".to_vec();
    put_u32(&mut b, 3u32.swap_bytes());
    b.extend_from_slice(&padding);
    assert!(open_err(&b).contains("big-endian"));
    let mut b = b"GGUF".to_vec();
    put_u32(&mut b, 99);
    b.extend_from_slice(&padding);
    assert!(open_err(&b).contains("version 99"));
}

#[test]
fn bad_tensor_directories_are_errors() {
    let ok = || Builder::new().f32_tensor("t", &[4, 2], &[0.0; 8]);
    assert!(open_bytes(&ok().build()).is_ok());

    // Data running past the end of the file (cut the last byte).
    let bytes = ok().build();
    assert!(open_err(&bytes[..bytes.len() - 1]).contains("past the end"));

    // Offsets: past the end, unaligned, overflowing.
    for (offset, what) in [
        (4096u64, "past the end"),
        (4, "alignment"),
        (u64::MAX - 31, ""),
    ] {
        let mut b = header(1, 0);
        put_str(&mut b, b"t");
        put_u32(&mut b, 1);
        put_u64(&mut b, 8);
        put_u32(&mut b, 0);
        put_u64(&mut b, offset);
        b.resize(b.len().next_multiple_of(32) + 32, 0);
        let err = open_err(&b);
        assert!(err.contains(what), "{err}");
    }

    // Dimensions: too many, product overflowing, rows that are not whole blocks.
    let dims_case = |n_dims: u32, dims: &[u64], ty: u32| {
        let mut b = header(1, 0);
        put_str(&mut b, b"t");
        put_u32(&mut b, n_dims);
        for &d in dims {
            put_u64(&mut b, d);
        }
        put_u32(&mut b, ty);
        put_u64(&mut b, 0);
        b.resize(b.len().next_multiple_of(32) + 64, 0);
        open_err(&b)
    };
    assert!(dims_case(5, &[1; 5], 0).contains("dimensions"));
    assert!(dims_case(1 << 31, &[1; 4], 0).contains("dimensions"));
    assert!(dims_case(2, &[1 << 40, 1 << 40], 0).contains("overflows"));
    assert!(dims_case(4, &[1 << 20, 1 << 20, 1 << 20, 1 << 20], 0).contains("overflows"));
    assert!(dims_case(2, &[16, 2], 8).contains("blocks"));
    // The byte size of a huge tensor overflows.
    assert!(dims_case(1, &[1 << 62], 0).contains("overflows"));

    // Duplicate tensor names; bad alignment values.
    let dup = Builder::new()
        .f32_tensor("t", &[1], &[0.0])
        .f32_tensor("t", &[1], &[0.0]);
    assert!(open_err(&dup.build()).contains("twice"));
    for value in [
        MetadataValue::U32(0),
        MetadataValue::U32(3),
        MetadataValue::I64(-32),
        MetadataValue::U64(1 << 40),
        MetadataValue::String("32".into()),
    ] {
        let b = ok().kv("general.alignment", value.clone());
        assert!(open_err(&b.build()).contains("alignment"), "{value:?}");
    }
    // Any power-of-two alignment written as another integer type is fine.
    let b = ok().kv("general.alignment", MetadataValue::U64(128));
    let f = open_bytes(&b.build()).unwrap();
    assert_eq!(f.alignment(), 128);
    assert_eq!(f.data_offset() % 128, 0);
}

#[test]
fn every_truncation_is_an_error() {
    let bytes = sample().build();
    for cut in 0..bytes.len() {
        let result = open_bytes(&bytes[..cut]);
        assert!(result.is_err(), "cut at {cut} of {} parsed", bytes.len());
    }
    // A real fixture: every cut within the header and the first tensor, then a stride.
    let path = gguf_fixture("qwen2_tiny.q8_0.gguf");
    let full = std::fs::read(&path).unwrap();
    let file = GgufFile::open(&path).unwrap();
    let data_offset = file.data_offset();
    // gguf-py pads after the last tensor too; cutting only that padding leaves a valid file.
    let data_end = file
        .tensors()
        .iter()
        .map(|t| file.tensor_range(t).unwrap().end)
        .max()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cut_path = dir.path().join("cut.gguf");
    let mut cuts: Vec<usize> = (0..data_offset + 256)
        .chain((data_offset + 256..data_end).step_by(997))
        .collect();
    // Longest first, so each cut only shortens the file (no rewrite per cut).
    cuts.reverse();
    std::fs::write(&cut_path, &full).unwrap();
    let handle = std::fs::OpenOptions::new()
        .write(true)
        .open(&cut_path)
        .unwrap();
    let mut n = 0;
    for cut in cuts {
        handle.set_len(cut as u64).unwrap();
        assert!(GgufFile::open(&cut_path).is_err(), "cut at {cut} parsed");
        n += 1;
    }
    println!("{n} truncations of {} rejected", path.display());
}

#[test]
fn garbage_is_an_error() {
    let mut rng = Rng(0x1234_5678_9abc_def1);
    for i in 0..2000 {
        let len = rng.below(600);
        let mut bytes = rng.bytes(len);
        if i % 2 == 0 && len >= 8 {
            // Valid magic and version, garbage after.
            bytes[..4].copy_from_slice(b"GGUF");
            bytes[4..8].copy_from_slice(&3u32.to_le_bytes());
        }
        assert!(open_bytes(&bytes).is_err(), "garbage {i} parsed");
    }
}

/// Loads everything a file offers through every API; errors are fine, panics are not.
fn exercise(path: &Path) -> usize {
    let Ok(file) = GgufFile::open(path) else {
        return 0;
    };
    let mut ok = 1;
    for t in file.tensors() {
        let _ = file.dequantize(t.name());
    }
    let _ = config_from_gguf(&file);
    let _ = cdr_models::gguf::chat_template(&file);
    if let Ok(weights) = GgufWeights::new(file) {
        ok += 1;
        for name in weights.names() {
            let _ = weights.with_tensor(&name, &mut |raw| Ok(convert(&raw, ComputeDtype::BF16)));
        }
    }
    ok
}

#[test]
fn random_corruptions_never_panic() {
    let source = std::fs::read(gguf_fixture("qwen2_tiny.q8_0.gguf")).unwrap();
    let header_len = GgufFile::open(gguf_fixture("qwen2_tiny.q8_0.gguf"))
        .unwrap()
        .data_offset();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fuzz.gguf");
    let mut rng = Rng(0xdead_beef_cafe_f00d);
    let (mut opened, mut served) = (0, 0);
    let runs = 300;
    for run in 0..runs {
        let mut bytes = source.clone();
        for _ in 0..1 + rng.below(4) {
            let at = rng.below(header_len);
            bytes[at] = match rng.below(4) {
                0 => 0xff,
                1 => 0,
                2 => bytes[at] ^ (1 << rng.below(8)),
                _ => rng.next_u64() as u8,
            };
        }
        std::fs::write(&path, &bytes).unwrap();
        let outcome = std::panic::catch_unwind(|| exercise(&path));
        match outcome {
            Ok(n) => {
                opened += usize::from(n >= 1);
                served += usize::from(n >= 2);
            }
            Err(_) => panic!("run {run} panicked"),
        }
    }
    println!(
        "{runs} corrupted headers: {opened} still parsed, {served} served weights, none panicked"
    );
}
