//! Datasets named by id (`org/name[@revision][:split]`, read from the local Hugging Face cache)
//! or by directory (`DIR[:split]`, e.g. one `cdr` wrote), resolved to the data files of one split.
//!
//! Splits are told from file and directory names as the hub and `datasets` tell them without a
//! dataset script: `{split}-00000-of-00001.parquet` (what `push_to_hub` and cdr write, any split
//! name), else a `train` / `validation` / `test` keyword (or a synonym) delimited by non-letters in
//! the file name, then in a directory name; files matching none belong to `train`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use cdr_types::hub::{self, HubId, RepoKind};

use crate::error::{DataError, Result};
use crate::format::Format;

/// The split read when none is named (and the dataset has it).
pub const DEFAULT_SPLIT: &str = "train";

/// One split of a dataset, resolved to files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatasetSplit {
    /// The split read.
    pub split: String,
    /// Its data files, in name order (shards in sequence).
    pub files: Vec<PathBuf>,
    /// Every split the dataset has, sorted.
    pub splits: Vec<String>,
}

/// The split an input reads when it names a dataset (a hub id or a directory, with `:split` or
/// the default); `None` for a plain file or something that is not a dataset.
pub fn input_split(input: &Path) -> Option<String> {
    if input.is_file() {
        return None;
    }
    resolve_input(input).ok().flatten().map(|d| d.split)
}

/// The files `input` stands for: itself when it is a file (or names nothing else), else the
/// split's files of the dataset it names.
pub(crate) fn input_files(
    input: &Path,
    explicit: Option<Format>,
) -> Result<Vec<(PathBuf, Format)>> {
    if !input.is_file()
        && let Some(dataset) = resolve_input(input)?
    {
        return dataset
            .files
            .into_iter()
            .map(|f| Format::resolve(&f, None).map(|format| (f, format)))
            .collect();
    }
    Ok(vec![(
        input.to_path_buf(),
        Format::resolve(input, explicit)?,
    )])
}

/// `Some` when `input` names a dataset (a directory, or a hub id whose repository is cached or
/// that has no file extension); `Ok(None)` leaves it to be read (and fail) as a file.
fn resolve_input(input: &Path) -> Result<Option<DatasetSplit>> {
    let error = |message: String| DataError::Dataset {
        path: input.to_path_buf(),
        message,
    };
    if input.is_dir() {
        return select(input, None).map(Some).map_err(error);
    }
    let Some(spec) = input.to_str() else {
        return Ok(None);
    };
    let (base, split) = match spec.rsplit_once(':') {
        Some((base, split)) if !split.is_empty() && !split.contains('/') => (base, Some(split)),
        _ => (spec, None),
    };
    if Path::new(base).is_dir() {
        return select(Path::new(base), split).map(Some).map_err(error);
    }
    let Some(id) = HubId::parse(base) else {
        return Ok(None);
    };
    match hub::snapshot(RepoKind::Dataset, &id) {
        Ok(snapshot) => select(&snapshot, split)
            .map(Some)
            .map_err(|e| error(format!("snapshot {}: {e}", snapshot.display()))),
        // `data/rows.jsonl` parses as an id too: a missing file with an extension is reported
        // as the missing file it most likely is.
        Err(_) if split.is_none() && Format::from_path(input).is_some() => Ok(None),
        Err(e) => Err(error(e.to_string())),
    }
}

/// The files of `split` (default: `train`, else the only split) under `root`.
fn select(root: &Path, split: Option<&str>) -> Result<DatasetSplit, String> {
    let mut by_split: BTreeMap<String, Vec<PathBuf>> = BTreeMap::new();
    let mut files = Vec::new();
    walk(root, &mut files).map_err(|e| format!("cannot list {}: {e}", root.display()))?;
    for file in files {
        let Ok(relative) = file.strip_prefix(root) else {
            continue;
        };
        by_split
            .entry(split_of(relative))
            .or_default()
            .push(file.clone());
    }
    let splits: Vec<String> = by_split.keys().cloned().collect();
    if splits.is_empty() {
        return Err("no .parquet, .jsonl or .json data files".into());
    }
    let chosen = match split {
        Some(s) => s.to_owned(),
        None if by_split.contains_key(DEFAULT_SPLIT) => DEFAULT_SPLIT.to_owned(),
        None if splits.len() == 1 => splits[0].clone(),
        None => {
            return Err(format!(
                "no `{DEFAULT_SPLIT}` split; pick one of {} with `:SPLIT`",
                splits.join(", ")
            ));
        }
    };
    let Some(mut files) = by_split.remove(&chosen) else {
        return Err(format!(
            "no split `{chosen}` (splits: {})",
            splits.join(", ")
        ));
    };
    files.sort();
    Ok(DatasetSplit {
        split: chosen,
        files,
        splits,
    })
}

/// Data files under `dir`, following the cache's symlinks; hidden entries left out.
fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path
            .file_name()
            .and_then(|n| n.to_str())
            .is_none_or(|n| n.starts_with('.'))
        {
            continue;
        }
        let meta = std::fs::metadata(&path)?;
        if meta.is_dir() {
            walk(&path, out)?;
        } else if meta.is_file() && Format::from_path(&path).is_some() {
            out.push(path);
        }
    }
    Ok(())
}

/// The split a data file (path relative to the dataset root) belongs to.
fn split_of(relative: &Path) -> String {
    let name = relative
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    if let Some(split) = sharded_split(name) {
        return split.to_owned();
    }
    let stem = name.split('.').next().unwrap_or_default();
    let dirs = relative
        .parent()
        .into_iter()
        .flat_map(|p| p.components())
        .filter_map(|c| c.as_os_str().to_str());
    // The file name decides before the directories, as in `datasets`.
    std::iter::once(stem)
        .chain(dirs)
        .find_map(keyword_split)
        .unwrap_or(DEFAULT_SPLIT)
        .to_owned()
}

/// `train` from `train-00000-of-00003.parquet`.
fn sharded_split(name: &str) -> Option<&str> {
    let (stem, _) = name.split_once('.')?;
    let (rest, total) = stem.rsplit_once("-of-")?;
    let (split, index) = rest.rsplit_once('-')?;
    let digits = |s: &str| s.len() == 5 && s.bytes().all(|b| b.is_ascii_digit());
    (digits(total) && digits(index) && !split.is_empty()).then_some(split)
}

/// A split keyword among the words of `text` (words: runs of letters).
fn keyword_split(text: &str) -> Option<&'static str> {
    text.split(|c: char| !c.is_ascii_alphabetic())
        .find_map(|word| match word.to_ascii_lowercase().as_str() {
            "train" | "training" => Some("train"),
            "validation" | "valid" | "val" | "dev" => Some("validation"),
            "test" | "testing" | "eval" | "evaluation" => Some("test"),
            _ => None,
        })
}

/// The data file a dataset-directory output (`--output DIR/`) writes for `split`:
/// `DIR/data/{split}-00000-of-00001.parquet`, the name `push_to_hub` gives a one-file split.
pub fn dataset_dir_file(dir: &Path, split: &str) -> PathBuf {
    dir.join("data")
        .join(format!("{split}-00000-of-00001.parquet"))
}

/// Whether an output path names a dataset directory rather than a file: it ends in a path
/// separator or is an existing directory.
pub fn is_dataset_dir(output: &Path) -> bool {
    output.is_dir()
        || output
            .as_os_str()
            .to_str()
            .is_some_and(|s| s.ends_with('/') || s.ends_with(std::path::MAIN_SEPARATOR))
}

/// Writes `dir/README.md`, a dataset card whose YAML `configs` lists every split under
/// `dir/data/` (`{split}-NNNNN-of-NNNNN.parquet`), so `datasets.load_dataset(dir)` loads them.
/// The text after an existing card's front matter, and its other metadata, are kept.
pub fn write_dataset_card(dir: &Path) -> Result<()> {
    let data = dir.join("data");
    let mut by_split: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for entry in std::fs::read_dir(&data).map_err(|e| DataError::read(&data, e))? {
        let entry = entry.map_err(|e| DataError::read(&data, e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        // Exact names: a glob such as `data/train-*` would also match a run's journal.
        if name.ends_with(".parquet")
            && let Some(split) = sharded_split(name)
        {
            by_split
                .entry(split.to_owned())
                .or_default()
                .push(format!("data/{name}"));
        }
    }
    let mut configs = String::from("configs:\n- config_name: default\n  data_files:\n");
    for (split, mut paths) in by_split {
        paths.sort();
        configs.push_str(&format!("  - split: {}\n    path:\n", yaml_string(&split)));
        for path in paths {
            configs.push_str(&format!("    - {}\n", yaml_string(&path)));
        }
    }
    let card = dir.join("README.md");
    let (metadata, body) = match std::fs::read_to_string(&card) {
        Ok(text) => split_front_matter(&text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => (
            String::new(),
            "\nScored by [cdr](https://github.com/cdr-rs/cdr).\n".to_owned(),
        ),
        Err(e) => return Err(DataError::read(&card, e)),
    };
    let text = format!("---\n{metadata}{configs}---\n{body}");
    std::fs::write(&card, text).map_err(|e| DataError::write(&card, e))
}

/// An existing card's front matter without its `configs` block, and the text after it.
fn split_front_matter(text: &str) -> (String, String) {
    let Some(rest) = text.strip_prefix("---\n") else {
        return (String::new(), text.to_owned());
    };
    let Some(end) = rest
        .find("\n---\n")
        .map(|i| i + 1)
        .or_else(|| rest.starts_with("---\n").then_some(0))
    else {
        return (String::new(), text.to_owned());
    };
    let (yaml, body) = (&rest[..end], &rest[end + 4..]);
    let mut kept = String::new();
    let mut in_configs = false;
    for line in yaml.lines() {
        // A top-level key starts in column 0 with a letter; the block's own lines are indented
        // or list items.
        if line.starts_with(|c: char| c.is_ascii_alphabetic()) {
            in_configs = line.starts_with("configs:");
        }
        if !in_configs {
            kept.push_str(line);
            kept.push('\n');
        }
    }
    (kept, body.to_owned())
}

/// A YAML double-quoted scalar (JSON's escaping is valid YAML).
fn yaml_string(s: &str) -> String {
    serde_json::Value::String(s.to_owned()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_from_names() {
        let cases = [
            ("data/train-00000-of-00002.parquet", "train"),
            ("data/filtered-00000-of-00001.parquet", "filtered"),
            ("test.jsonl", "test"),
            ("data/my_valid_file.json", "validation"),
            ("dev/part1.parquet", "validation"),
            ("eval/train.parquet", "train"),
            ("data.parquet", "train"),
            ("contest.parquet", "train"),
        ];
        for (path, split) in cases {
            assert_eq!(split_of(Path::new(path)), split, "{path}");
        }
    }

    #[test]
    fn front_matter_keeps_other_metadata() {
        let (yaml, body) = split_front_matter(
            "---\nlicense: mit\nconfigs:\n- config_name: x\n  data_files: a\ntags:\n- t\n---\n# Card\n",
        );
        assert_eq!(yaml, "license: mit\ntags:\n- t\n");
        assert_eq!(body, "# Card\n");
    }
}
