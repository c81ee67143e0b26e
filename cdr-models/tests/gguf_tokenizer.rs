//! The tokenizer built from a GGUF's `tokenizer.ggml.*` metadata gives transformers' ids.
//!
//! Expected ids come from `tools/make_gguf_tokenizer_fixtures.py` (transformers loading each GGUF
//! with `AutoTokenizer.from_pretrained(dir, gguf_file=...)`):
//! - `spm_llama.gguf`: a tiny SentencePiece BPE vocabulary with byte fallback (`llama` model);
//! - `qwen2_bpe.gguf`: a tiny byte-level BPE vocabulary with `pre = "qwen2"` (`gpt2` model);
//! - the real SmolLM2-135M-Instruct GGUF (`gpt2` model, `pre = "smollm"`), read from
//!   `.cache/assets/` (fetched by `tools/fetch_assets.sh`); skipped with a NOTE when absent.
//!
//! The metadata is read by a minimal GGUF key/value reader below, so this test does not depend on
//! cdr's own GGUF parser.

#[path = "../src/gguf/tokenizer.rs"]
#[allow(dead_code)]
mod gguf_tokenizer;

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};

use gguf_tokenizer::{GgufTokenizerData, build_tokenizer};
use serde_json::Value;

// ------------------------------------------------------------------------------------------------
// A minimal GGUF metadata reader: the header and the key/value section, nothing of the tensors.
// ------------------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
enum Meta {
    Uint(u64),
    Int(i64),
    Float(f64),
    Bool(bool),
    Str(String),
    Array(Vec<Meta>),
}

struct MetaReader<R: Read> {
    inner: R,
}

impl<R: Read> MetaReader<R> {
    fn bytes<const N: usize>(&mut self) -> io::Result<[u8; N]> {
        let mut buf = [0u8; N];
        self.inner.read_exact(&mut buf)?;
        Ok(buf)
    }
    fn u32(&mut self) -> io::Result<u32> {
        Ok(u32::from_le_bytes(self.bytes()?))
    }
    fn u64(&mut self) -> io::Result<u64> {
        Ok(u64::from_le_bytes(self.bytes()?))
    }
    fn string(&mut self) -> io::Result<String> {
        let len = self.u64()?;
        let mut buf = Vec::new();
        (&mut self.inner).take(len).read_to_end(&mut buf)?;
        if buf.len() as u64 != len {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        String::from_utf8(buf).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
    }
    fn value(&mut self, kind: u32) -> io::Result<Meta> {
        Ok(match kind {
            0 => Meta::Uint(u64::from(u8::from_le_bytes(self.bytes()?))),
            1 => Meta::Int(i64::from(i8::from_le_bytes(self.bytes()?))),
            2 => Meta::Uint(u64::from(u16::from_le_bytes(self.bytes()?))),
            3 => Meta::Int(i64::from(i16::from_le_bytes(self.bytes()?))),
            4 => Meta::Uint(u64::from(self.u32()?)),
            5 => Meta::Int(i64::from(i32::from_le_bytes(self.bytes()?))),
            6 => Meta::Float(f64::from(f32::from_le_bytes(self.bytes()?))),
            7 => Meta::Bool(self.bytes::<1>()?[0] != 0),
            8 => Meta::Str(self.string()?),
            9 => {
                let item = self.u32()?;
                let len = self.u64()?;
                let mut items = Vec::with_capacity(len.min(1 << 20) as usize);
                for _ in 0..len {
                    items.push(self.value(item)?);
                }
                Meta::Array(items)
            }
            10 => Meta::Uint(self.u64()?),
            11 => Meta::Int(i64::from_le_bytes(self.bytes()?)),
            12 => Meta::Float(f64::from_le_bytes(self.bytes()?)),
            other => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("GGUF value type {other}"),
                ));
            }
        })
    }
}

/// All key/value pairs of a GGUF (v2/v3) file, in file order.
fn read_gguf_metadata(path: &Path) -> io::Result<Vec<(String, Meta)>> {
    let mut r = MetaReader {
        inner: BufReader::new(File::open(path)?),
    };
    if &r.bytes::<4>()? != b"GGUF" {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "not a GGUF file",
        ));
    }
    let version = r.u32()?;
    if version < 2 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("GGUF version {version}"),
        ));
    }
    let _tensor_count = r.u64()?;
    let kv_count = r.u64()?;
    let mut kvs = Vec::new();
    for _ in 0..kv_count {
        let key = r.string()?;
        let kind = r.u32()?;
        kvs.push((key, r.value(kind)?));
    }
    Ok(kvs)
}

fn tokenizer_data(path: &Path) -> GgufTokenizerData {
    let kvs = read_gguf_metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let get = |key: &str| kvs.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone());
    let string = |key: &str| match get(key) {
        Some(Meta::Str(s)) => Some(s),
        None => None,
        other => panic!("{key}: {other:?}"),
    };
    let id = |key: &str| match get(key) {
        Some(Meta::Uint(v)) => Some(u32::try_from(v).unwrap()),
        Some(Meta::Int(v)) => Some(u32::try_from(v).unwrap()),
        None => None,
        other => panic!("{key}: {other:?}"),
    };
    let flag = |key: &str| match get(key) {
        Some(Meta::Bool(b)) => Some(b),
        None => None,
        other => panic!("{key}: {other:?}"),
    };
    let array = |key: &str| match get(key) {
        Some(Meta::Array(items)) => items,
        None => Vec::new(),
        other => panic!("{key}: {other:?}"),
    };
    let strings = |key: &str| {
        array(key)
            .into_iter()
            .map(|v| match v {
                Meta::Str(s) => s,
                other => panic!("{key}: {other:?}"),
            })
            .collect::<Vec<_>>()
    };
    GgufTokenizerData {
        model: string("tokenizer.ggml.model").expect("tokenizer.ggml.model"),
        pre: string("tokenizer.ggml.pre"),
        tokens: strings("tokenizer.ggml.tokens"),
        token_types: array("tokenizer.ggml.token_type")
            .into_iter()
            .map(|v| match v {
                Meta::Int(i) => i32::try_from(i).unwrap(),
                Meta::Uint(u) => i32::try_from(u).unwrap(),
                other => panic!("token_type: {other:?}"),
            })
            .collect(),
        scores: array("tokenizer.ggml.scores")
            .into_iter()
            .map(|v| match v {
                Meta::Float(f) => f as f32,
                other => panic!("scores: {other:?}"),
            })
            .collect(),
        merges: strings("tokenizer.ggml.merges"),
        bos_id: id("tokenizer.ggml.bos_token_id"),
        eos_id: id("tokenizer.ggml.eos_token_id"),
        unk_id: id("tokenizer.ggml.unknown_token_id"),
        pad_id: id("tokenizer.ggml.padding_token_id"),
        add_bos: flag("tokenizer.ggml.add_bos_token"),
        add_eos: flag("tokenizer.ggml.add_eos_token"),
    }
}

// ------------------------------------------------------------------------------------------------
// The checks.
// ------------------------------------------------------------------------------------------------

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/gguf_tokenizer")
}

fn ids_of(value: &Value) -> Vec<u32> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|v| u32::try_from(v.as_u64().unwrap()).unwrap())
        .collect()
}

/// Encodes every text of `expected` both ways and checks ids, decoding and special tokens; returns
/// how many texts were checked.
fn check_against(gguf: &Path, expected: &Path) -> usize {
    let data = tokenizer_data(gguf);
    let tokenizer = build_tokenizer(&data).unwrap_or_else(|e| panic!("{}: {e}", gguf.display()));
    if let Ok(dir) = std::env::var("CDR_GGUF_TOKENIZER_DUMP") {
        // Debugging aid: the built tokenizer as tokenizer.json, to diff against transformers'
        // `tok.backend_tokenizer.to_str()`.
        let name = gguf.file_stem().unwrap().to_string_lossy().into_owned();
        let path = Path::new(&dir).join(format!("{name}.tokenizer.json"));
        tokenizer.save(&path, true).unwrap();
    }
    let expected: Value =
        serde_json::from_str(&std::fs::read_to_string(expected).unwrap()).unwrap();

    let mut failures = Vec::new();
    let cases = expected["cases"].as_array().unwrap();
    for case in cases {
        let text = case["text"].as_str().unwrap();
        let want = ids_of(&case["ids"]);
        let got = tokenizer.encode(text, false).unwrap().get_ids().to_vec();
        if got != want {
            failures.push(format!(
                "{text:?} (add_special_tokens=false):\n   want {want:?}\n    got {got:?}"
            ));
        }
        let want_special = ids_of(&case["ids_with_special"]);
        let got_special = tokenizer.encode(text, true).unwrap().get_ids().to_vec();
        if got_special != want_special {
            failures.push(format!(
                "{text:?} (add_special_tokens=true):\n   want {want_special:?}\n    got {got_special:?}"
            ));
        }
        let want_text = case["decoded"].as_str().unwrap();
        let got_text = tokenizer.decode(&want, false).unwrap();
        if got_text != want_text {
            failures.push(format!(
                "decode of {text:?}:\n   want {want_text:?}\n    got {got_text:?}"
            ));
        }
    }
    for (token, id) in expected["special_tokens"].as_object().unwrap() {
        let id = u32::try_from(id.as_u64().unwrap()).unwrap();
        let got = tokenizer
            .encode(token.as_str(), false)
            .unwrap()
            .get_ids()
            .to_vec();
        if got != [id] {
            failures.push(format!("special token {token:?}: want [{id}], got {got:?}"));
        }
        if tokenizer.token_to_id(token) != Some(id) {
            failures.push(format!(
                "token_to_id({token:?}) = {:?}, want {id}",
                tokenizer.token_to_id(token)
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{}: {} mismatches\n{}",
        gguf.display(),
        failures.len(),
        failures.join("\n")
    );
    cases.len()
}

#[test]
fn sentencepiece_llama_vocab_matches_transformers() {
    let n = check_against(
        &fixtures().join("spm_llama.gguf"),
        &fixtures().join("spm_llama_expected.json"),
    );
    assert!(n >= 15);
}

#[test]
fn byte_level_qwen2_vocab_matches_transformers() {
    let n = check_against(
        &fixtures().join("qwen2_bpe.gguf"),
        &fixtures().join("qwen2_bpe_expected.json"),
    );
    assert!(n >= 15);
}

#[test]
#[cfg_attr(not(cdr_has_smollm2), ignore = "needs tools/fetch_assets.sh smollm2")]
fn smollm2_gguf_matches_transformers() {
    let gguf = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../.cache/assets/SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(
        gguf.is_file(),
        "{} is missing: run tools/fetch_assets.sh smollm2",
        gguf.display()
    );
    let n = check_against(&gguf, &fixtures().join("smollm2_expected.json"));
    assert!(n >= 15);
}

#[test]
fn special_and_added_tokens_stay_whole() {
    let data = tokenizer_data(&fixtures().join("qwen2_bpe.gguf"));
    let tokenizer = build_tokenizer(&data).unwrap();
    let encoding = tokenizer
        .encode("<|im_start|>user\nHi<|im_end|><think>", false)
        .unwrap();
    let ids = encoding.get_ids();
    assert_eq!(ids.first(), Some(&3));
    assert!(ids.contains(&4));
    assert_eq!(ids.last(), Some(&384), "user-defined <think> is one token");
    // Control tokens are special (skipped when decoding without specials); user-defined are not.
    assert_eq!(tokenizer.decode(&[3, 384], true).unwrap(), "<think>");
    // The control token spelled outside the byte alphabet is not special: it is split.
    assert!(
        tokenizer
            .encode("<ctrl space>", false)
            .unwrap()
            .get_ids()
            .len()
            > 1
    );
}

#[test]
fn add_bos_and_add_eos_follow_the_flags() {
    let mut data = tokenizer_data(&fixtures().join("spm_llama.gguf"));
    assert_eq!(
        data.add_bos, None,
        "the fixture leaves add_bos_token out: llama adds BOS by default"
    );
    let plain = build_tokenizer(&data)
        .unwrap()
        .encode("Hello", false)
        .unwrap()
        .get_ids()
        .to_vec();

    data.add_bos = Some(false);
    data.add_eos = Some(true);
    let tokenizer = build_tokenizer(&data).unwrap();
    let ids = tokenizer.encode("Hello", true).unwrap().get_ids().to_vec();
    let eos = data.eos_id.unwrap();
    assert_eq!(ids, [plain.as_slice(), &[eos]].concat());
    let pair = tokenizer
        .encode(("Hello", "Hello"), true)
        .unwrap()
        .get_ids()
        .to_vec();
    assert_eq!(
        pair,
        [plain.as_slice(), &[eos], plain.as_slice(), &[eos]].concat()
    );

    data.add_bos = Some(true);
    data.add_eos = None;
    let tokenizer = build_tokenizer(&data).unwrap();
    let bos = data.bos_id.unwrap();
    let pair = tokenizer
        .encode(("Hello", "Hello"), true)
        .unwrap()
        .get_ids()
        .to_vec();
    assert_eq!(
        pair,
        [&[bos], plain.as_slice(), &[bos], plain.as_slice()].concat()
    );
}

#[test]
fn unknown_pre_falls_back_to_gpt2_split() {
    let mut data = tokenizer_data(&fixtures().join("qwen2_bpe.gguf"));
    data.pre = Some("no-such-pre".into());
    let unknown = build_tokenizer(&data).unwrap();
    data.pre = Some("default".into());
    let default = build_tokenizer(&data).unwrap();
    data.pre = None;
    let absent = build_tokenizer(&data).unwrap();
    // GPT-2's split keeps digit runs together, qwen2's does not: the fallback is GPT-2's.
    let text = "abc 12345 def's";
    let ids = |t: &tokenizers::Tokenizer| t.encode(text, false).unwrap().get_ids().to_vec();
    assert_eq!(ids(&unknown), ids(&default));
    assert_eq!(ids(&unknown), ids(&absent));
}

#[test]
fn bad_metadata_is_an_error() {
    let mut data = tokenizer_data(&fixtures().join("spm_llama.gguf"));
    data.scores.clear();
    assert!(build_tokenizer(&data).unwrap_err().contains("score"));

    let mut data = tokenizer_data(&fixtures().join("qwen2_bpe.gguf"));
    data.merges.push("a b c".into());
    assert!(build_tokenizer(&data).unwrap_err().contains("merges"));
    data.tokens.clear();
    assert!(build_tokenizer(&data).is_err());
}
