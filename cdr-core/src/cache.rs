//! The log-prob cache: each model's response log-probs on disk, so that a re-run, or a new
//! strong/weak pairing of models already scored, never runs a forward pass twice.
//!
//! A reward is `Σ log S − Σ log W`, a difference of two per-model sums, so one model's sums can be
//! reused by every pair it joins. What a sum depends on is the key:
//!
//! - the table ([`CacheKey`]): the model's identity (a fingerprint of its config, tokenizer and
//!   weight files), the compute dtype, the chat template, the customization and the token limits;
//!   one file `DIR/<key digest>.lp` per key;
//! - the entry: the text key (a fingerprint of the exact rendered text and where its response
//!   begins); each entry also records a fingerprint of the token ids it scored, which is how two
//!   models are found to tokenize a text alike.
//!
//! Each line of a table is `CHECK<TAB>JSON`, `CHECK` a fingerprint of the JSON bytes. A line whose
//! check fails (a torn write, an edit, disk trouble) is reported and dropped, so its text is
//! recomputed rather than trusted. `DIR/files.json` remembers file fingerprints by path, size and
//! modification time, because hashing a multi-gigabyte checkpoint on every run would cost seconds.

use std::collections::{BTreeMap, HashMap};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::UNIX_EPOCH;

use cdr_models::ComputeDtype;
use cdr_prompt::{ChatTemplate, Customization};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tracing::{info, warn};

use crate::encode::{Encoded, Limits};
use crate::error::{CoreError, Result};

const TABLE_HEADER: &str = "# cdr log-prob cache v1";
const FILES_MEMO: &str = "files.json";

/// SHA-256 over length-prefixed parts, as 32 hex digits (128 bits). The length prefixes make the
/// fingerprint depend on how the bytes split into parts, not only on their concatenation.
pub fn fingerprint(parts: &[&[u8]]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p);
    }
    hex(&h.finalize()[..16])
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The entry key of a rendered text: the full text and the byte where the response begins.
pub fn text_key(full: &str, response_start: usize) -> String {
    fingerprint(&[full.as_bytes(), &(response_start as u64).to_le_bytes()])
}

/// The fingerprint of the token sequence a model scores (ids and where the response begins).
pub fn ids_key(encoded: &Encoded) -> String {
    let ids: Vec<u8> = encoded.ids.iter().flat_map(|i| i.to_le_bytes()).collect();
    fingerprint(&[&ids, &(encoded.response_start as u64).to_le_bytes()])
}

/// A model's identity: a fingerprint of the files its outputs depend on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelId(pub String);

/// What one table of the cache holds: one model's log-probs under one rendering of the texts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheKey {
    /// The model's fingerprint.
    pub model: ModelId,
    /// The compute dtype (log-probs differ slightly between dtypes).
    pub dtype: String,
    /// Fingerprint of the template source and its BOS/EOS strings (not its name: a model's own
    /// template is named after the path it was read from).
    pub template: String,
    /// Fingerprint of the customization config, `none` without one.
    pub customization: String,
    /// The prompt token limit texts were cut to.
    pub max_prompt_tokens: usize,
    /// The response token limit texts were cut to.
    pub max_response_tokens: usize,
}

impl CacheKey {
    /// The key of `model`'s log-probs computed in `dtype` on texts rendered with `template` and
    /// `customization`, cut to `limits`.
    pub fn new(
        model: &ModelId,
        dtype: ComputeDtype,
        template: &ChatTemplate,
        customization: Option<&Customization>,
        limits: Limits,
    ) -> Result<Self> {
        let customization = match customization {
            Some(c) => {
                let json = serde_json::to_vec(c)
                    .map_err(|e| CoreError::Invalid(format!("customization: {e}")))?;
                fingerprint(&[&json])
            }
            None => "none".to_string(),
        };
        Ok(Self {
            model: model.clone(),
            dtype: format!("{dtype:?}").to_lowercase(),
            template: template_key(template),
            customization,
            max_prompt_tokens: limits.max_prompt_tokens,
            max_response_tokens: limits.max_response_tokens,
        })
    }

    /// The table's file stem.
    pub fn digest(&self) -> String {
        // Serializing a plain struct of strings and integers cannot fail.
        let json = serde_json::to_vec(self).unwrap_or_default();
        fingerprint(&[&json])
    }
}

/// Fingerprint of what a template renders: its source and special-token strings.
pub fn template_key(template: &ChatTemplate) -> String {
    fingerprint(&[
        template.source().as_bytes(),
        template.bos_token().as_bytes(),
        template.eos_token().as_bytes(),
    ])
}

/// One model's log-probs on one text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CachedLogprobs {
    /// [`text_key`] of the rendered text.
    pub text: String,
    /// [`ids_key`] of the token sequence scored.
    pub ids: String,
    /// Number of response tokens.
    pub n: usize,
    /// Sum of the response tokens' log-probs (f64, in token order).
    pub logprob: f64,
    /// Per-token log-probs, when they were asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens: Option<Vec<f32>>,
}

/// A cache directory.
#[derive(Debug, Clone)]
pub struct LogprobCache {
    dir: PathBuf,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct FileStamp {
    size: u64,
    mtime_ns: u128,
    sha256: String,
}

impl LogprobCache {
    /// Opens (creating) a cache directory.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir).map_err(CoreError::io(&dir))?;
        Ok(Self { dir })
    }

    /// The cache's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The identity of the model at `path` (a directory or a GGUF file).
    pub fn model_id(&self, path: &Path) -> Result<ModelId> {
        let files = model_files(path)?;
        let memo_path = self.dir.join(FILES_MEMO);
        let mut memo: BTreeMap<String, FileStamp> = match std::fs::read(&memo_path) {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                warn!(path = %memo_path.display(), "unreadable file-fingerprint memo ({e}); files are rehashed");
                BTreeMap::new()
            }),
            Err(_) => BTreeMap::new(),
        };
        let mut parts: Vec<Vec<u8>> = Vec::new();
        let mut changed = false;
        for file in &files {
            let meta = std::fs::metadata(file).map_err(CoreError::io(file))?;
            let mtime_ns = meta
                .modified()
                .ok()
                .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_nanos());
            let abs = std::fs::canonicalize(file).map_err(CoreError::io(file))?;
            let name = abs.display().to_string();
            let hash = match memo.get(&name) {
                Some(s) if s.size == meta.len() && s.mtime_ns == mtime_ns => s.sha256.clone(),
                _ => {
                    let hash = hash_file(file, meta.len())?;
                    memo.insert(
                        name,
                        FileStamp {
                            size: meta.len(),
                            mtime_ns,
                            sha256: hash.clone(),
                        },
                    );
                    changed = true;
                    hash
                }
            };
            let file_name = file.file_name().map(|n| n.to_string_lossy().into_owned());
            parts.push(file_name.unwrap_or_default().into_bytes());
            parts.push(hash.into_bytes());
        }
        if changed {
            let json = serde_json::to_vec_pretty(&memo)
                .map_err(|e| CoreError::Invalid(format!("file-fingerprint memo: {e}")))?;
            write_atomically(&memo_path, &json)?;
        }
        let refs: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
        Ok(ModelId(fingerprint(&refs)))
    }

    /// The table for `key`, read from disk (corrupt entries dropped and reported).
    pub fn table(&self, key: &CacheKey) -> Result<CacheTable> {
        CacheTable::open(self.dir.join(format!("{}.lp", key.digest())), key)
    }
}

/// The files a model's outputs depend on: a GGUF file itself, or a directory's config, tokenizer,
/// template and weight files (not READMEs or licences, whose edits change nothing).
fn model_files(path: &Path) -> Result<Vec<PathBuf>> {
    // An adapter's outputs depend on its base's files too.
    let dir = cdr_models::ModelDir::new(path);
    if dir.is_adapter() {
        let mut files = dir_model_files(path)?;
        files.extend(model_files(&dir.resolved()?.path)?);
        return Ok(files);
    }
    dir_model_files(path)
}

/// A GGUF file itself, or a directory's config, tokenizer, template and weight files.
fn dir_model_files(path: &Path) -> Result<Vec<PathBuf>> {
    if path.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(path)
        .map_err(CoreError::io(path))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let ext = p.extension().and_then(|e| e.to_str()).unwrap_or("");
            p.is_file() && matches!(ext, "json" | "safetensors" | "gguf" | "jinja" | "model")
        })
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(CoreError::Invalid(format!(
            "{}: no model files (config, tokenizer, weights) to fingerprint",
            path.display()
        )));
    }
    Ok(files)
}

fn hash_file(path: &Path, size: u64) -> Result<String> {
    if size > 256 << 20 {
        info!(path = %path.display(), mib = size >> 20, "fingerprinting model file");
    }
    let mut file = File::open(path).map_err(CoreError::io(path))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 4 << 20];
    loop {
        let n = file.read(&mut buf).map_err(CoreError::io(path))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex(&h.finalize()))
}

fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".tmp{}", std::process::id()));
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, bytes).map_err(CoreError::io(&tmp))?;
    std::fs::rename(&tmp, path).map_err(CoreError::io(path))
}

fn entry_line(entry: &CachedLogprobs) -> Result<String> {
    let json = serde_json::to_string(entry)
        .map_err(|e| CoreError::Invalid(format!("cache entry: {e}")))?;
    Ok(format!("{}\t{json}\n", fingerprint(&[json.as_bytes()])))
}

/// Parses one table line; `None` when its checksum or JSON is bad.
fn parse_line(line: &[u8]) -> Option<CachedLogprobs> {
    let tab = line.iter().position(|&b| b == b'\t')?;
    let (check, json) = (&line[..tab], &line[tab + 1..]);
    if check != fingerprint(&[json]).as_bytes() {
        return None;
    }
    serde_json::from_slice(json).ok()
}

/// One table: a model's log-probs under one key, in memory and appended to its file as they are
/// computed (so an interrupted run keeps what it scored).
#[derive(Debug)]
pub struct CacheTable {
    path: PathBuf,
    entries: Mutex<HashMap<String, CachedLogprobs>>,
    file: Mutex<File>,
    dropped: usize,
}

impl CacheTable {
    fn open(path: PathBuf, key: &CacheKey) -> Result<Self> {
        let mut entries = HashMap::new();
        let mut dropped = 0;
        let header = format!(
            "{TABLE_HEADER}\t{}\n",
            serde_json::to_string(key).unwrap_or_default()
        );
        if path.exists() {
            let file = File::open(&path).map_err(CoreError::io(&path))?;
            for (i, line) in BufReader::new(file).split(b'\n').enumerate() {
                let line = line.map_err(CoreError::io(&path))?;
                if line.starts_with(b"#") || line.is_empty() {
                    continue;
                }
                match parse_line(&line) {
                    Some(e) => {
                        entries.insert(e.text.clone(), e);
                    }
                    None => {
                        warn!(
                            "{}:{}: corrupt log-prob cache entry (checksum or JSON does not match); it is dropped and recomputed",
                            path.display(),
                            i + 1
                        );
                        dropped += 1;
                    }
                }
            }
            if dropped > 0 {
                // Rewrite without the bad lines, so they are reported once, not on every run.
                let mut text = header.clone();
                for e in entries.values() {
                    text.push_str(&entry_line(e)?);
                }
                write_atomically(&path, text.as_bytes())?;
            }
        } else {
            write_atomically(&path, header.as_bytes())?;
        }
        let file = OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(CoreError::io(&path))?;
        Ok(Self {
            path,
            entries: Mutex::new(entries),
            file: Mutex::new(file),
            dropped,
        })
    }

    /// The file the table lives in.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Entries read from disk that failed their check.
    pub fn dropped(&self) -> usize {
        self.dropped
    }

    /// Entries in the table.
    pub fn len(&self) -> usize {
        self.entries.lock().map_or(0, |e| e.len())
    }

    /// Whether the table holds no entry.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The entry for `text` if it scored the token sequence `ids` (and holds per-token log-probs
    /// when `per_token`).
    pub fn get(&self, text: &str, ids: &str, per_token: bool) -> Option<CachedLogprobs> {
        let entries = self.entries.lock().ok()?;
        let e = entries.get(text)?;
        if e.ids != ids {
            // Every input of the tokenization is in the key, so this means a bug or a hand edit.
            warn!(path = %self.path.display(), text, "cached entry scored other token ids; recomputing");
            return None;
        }
        (!per_token || e.tokens.is_some()).then(|| e.clone())
    }

    /// Stores an entry, appending it to the file.
    pub fn insert(&self, entry: CachedLogprobs) -> Result<()> {
        let line = entry_line(&entry)?;
        let poisoned =
            || CoreError::Invalid(format!("{}: cache lock poisoned", self.path.display()));
        self.file
            .lock()
            .map_err(|_| poisoned())?
            .write_all(line.as_bytes())
            .map_err(CoreError::io(&self.path))?;
        self.entries
            .lock()
            .map_err(|_| poisoned())?
            .insert(entry.text.clone(), entry);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(template: &ChatTemplate, custom: Option<&Customization>, model: &str) -> String {
        CacheKey::new(
            &ModelId(model.into()),
            ComputeDtype::F32,
            template,
            custom,
            Limits::default(),
        )
        .unwrap()
        .digest()
    }

    #[test]
    fn key_changes_with_template_customization_model_and_dtype() {
        let chatml = ChatTemplate::builtin("chatml").unwrap();
        let llama3 = ChatTemplate::builtin("llama3").unwrap();
        let paper = Customization::preset("paper").unwrap();
        let criteria = Customization::preset("criteria").unwrap();
        let base = key(&chatml, None, "m");
        assert_eq!(base, key(&chatml, None, "m"), "deterministic");
        let others = [
            key(&llama3, None, "m"),
            key(&chatml, Some(&paper), "m"),
            key(&chatml, Some(&criteria), "m"),
            key(&chatml, None, "other weights"),
        ];
        for (i, k) in others.iter().enumerate() {
            assert_ne!(&base, k, "variant {i}");
        }
        assert_ne!(others[1], others[2]);
        let bf16 = CacheKey::new(
            &ModelId("m".into()),
            ComputeDtype::BF16,
            &chatml,
            None,
            Limits::default(),
        )
        .unwrap();
        assert_ne!(base, bf16.digest());
    }

    #[test]
    fn model_id_follows_file_bytes_and_survives_the_memo() {
        let tmp = tempfile::tempdir().unwrap();
        let model = tmp.path().join("model");
        std::fs::create_dir(&model).unwrap();
        std::fs::write(model.join("config.json"), "{}").unwrap();
        std::fs::write(model.join("model.safetensors"), [1u8, 2, 3]).unwrap();
        std::fs::write(model.join("README.md"), "about").unwrap();
        let cache = LogprobCache::open(tmp.path().join("cache")).unwrap();
        let a = cache.model_id(&model).unwrap();
        assert_eq!(a, cache.model_id(&model).unwrap(), "memoized");
        std::fs::write(model.join("README.md"), "edited").unwrap();
        assert_eq!(
            a,
            cache.model_id(&model).unwrap(),
            "README is not the model"
        );
        // Same size, new bytes: the mtime moves, so the memo must not answer.
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(model.join("model.safetensors"), [1u8, 2, 4]).unwrap();
        assert_ne!(a, cache.model_id(&model).unwrap(), "weights changed");
    }

    fn entry(text: &str, logprob: f64) -> CachedLogprobs {
        CachedLogprobs {
            text: text.into(),
            ids: "ids".into(),
            n: 3,
            logprob,
            tokens: Some(vec![-0.1, -0.2, logprob as f32 + 0.3]),
        }
    }

    #[test]
    fn entries_round_trip_exactly_and_corruption_is_dropped() {
        let tmp = tempfile::tempdir().unwrap();
        let cache = LogprobCache::open(tmp.path()).unwrap();
        let chatml = ChatTemplate::builtin("chatml").unwrap();
        let k = CacheKey::new(
            &ModelId("m".into()),
            ComputeDtype::F32,
            &chatml,
            None,
            Limits::default(),
        )
        .unwrap();
        let lp = -12.345_678_901_234_567_f64 / 3.0;
        {
            let t = cache.table(&k).unwrap();
            t.insert(entry("a", lp)).unwrap();
            t.insert(entry("b", -1.0)).unwrap();
        }
        let t = cache.table(&k).unwrap();
        assert_eq!(t.dropped(), 0);
        let got = t.get("a", "ids", true).unwrap();
        assert_eq!(got.logprob.to_bits(), lp.to_bits(), "bit-exact");
        assert!(t.get("a", "other ids", false).is_none());
        let path = t.path().to_path_buf();
        drop(t);

        // Flip one digit of a's sum, and tear b's line in half.
        let text = std::fs::read_to_string(&path).unwrap();
        let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
        let ia = lines.iter().position(|l| l.contains("\"a\"")).unwrap();
        let ib = lines.iter().position(|l| l.contains("\"b\"")).unwrap();
        lines[ia] = lines[ia].replacen("-4.11", "-4.12", 1);
        let half = lines[ib].len() / 2;
        lines[ib].truncate(half);
        std::fs::write(&path, lines.join("\n") + "\n").unwrap();
        let t = cache.table(&k).unwrap();
        assert_eq!(t.dropped(), 2);
        assert!(t.get("a", "ids", false).is_none() && t.get("b", "ids", false).is_none());
        drop(t);
        assert_eq!(cache.table(&k).unwrap().dropped(), 0, "rewritten clean");
    }
}
