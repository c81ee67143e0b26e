//! A model directory tokenizes as transformers' `AutoTokenizer` loads it, which is not always the
//! `tokenizer.json` pipeline as written: for `model_type: qwen2` transformers builds its own
//! `Qwen2Tokenizer` (NFC, Qwen2's split regex). The qwen2 fixtures ship a GPT-2 style tokenizer.json,
//! and tools/make_fixtures.py records texts on which the two differ, with AutoTokenizer's ids.

mod common;

use cdr_models::ModelDir;
use common::fixture_dir;
use serde::Deserialize;

#[derive(Deserialize)]
struct Reference {
    class: String,
    texts: Vec<Text>,
}

#[derive(Deserialize)]
struct Text {
    text: String,
    ids: Vec<u32>,
    tokenizer_json_ids: Vec<u32>,
}

#[test]
fn qwen2_directories_tokenize_as_transformers_builds_them() {
    for name in ["qwen2_tiny", "qwen2_sw"] {
        let dir = fixture_dir(name);
        let path = dir.join("transformers_tokenization.json");
        let reference: Reference =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let tokenizer = ModelDir::new(&dir).tokenizer().unwrap();
        let raw = cdr_models::load_tokenizer(dir.join("tokenizer.json")).unwrap();
        let mut differing = 0;
        for t in &reference.texts {
            let got = tokenizer.encode(t.text.as_str(), false).unwrap();
            assert_eq!(got.get_ids(), t.ids, "{name}: {:?}", t.text);
            // The file as written gives what Python's tokenizers gives on it.
            let as_written = raw.encode(t.text.as_str(), false).unwrap();
            assert_eq!(
                as_written.get_ids(),
                t.tokenizer_json_ids,
                "{name}: {:?}",
                t.text
            );
            differing += usize::from(t.ids != t.tokenizer_json_ids);
        }
        println!(
            "{name}: {} texts tokenize as transformers' {} ({differing} differ from tokenizer.json as written)",
            reference.texts.len(),
            reference.class
        );
        assert!(differing > 0, "{name}: the reference tells nothing apart");
    }
}
