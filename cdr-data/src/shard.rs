//! Splitting a run over machines: which rows a shard owns, what its output is called, and merging
//! the shard outputs back into the file one process would have written.
//!
//! A row belongs to shard `draw(SHARD_SEED, id) % N`: a stable hash of its id, so the assignment
//! does not depend on the input order, the machine or the cdr version, and a resumed or re-run
//! shard owns exactly the rows it owned before.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::fs::{self, File};
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{DataError, Position};
use crate::format::Format;
use crate::id::{IdError, extract_id};
use crate::normalize::take_id;
use crate::ordered_json::OrderedJson;
use crate::read::{ReadOptions, read_objects};
use crate::write::{RecordWriter, WriteOptions};
use cdr_types::draw;

/// Seed of the shard hash. Fixed forever: changing it would reassign rows between the shards of a
/// run that is half done.
const SHARD_SEED: u64 = 0x5348_4152_4421; // "SHARD!"

/// One part of a run split `count` ways: the rows whose id hashes to `index`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Shard {
    index: usize,
    count: usize,
}

/// Where a shard index came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShardSource {
    /// `--shard I/N`.
    Flag,
    /// A Slurm job array (`SLURM_ARRAY_TASK_ID`, `SLURM_ARRAY_TASK_COUNT`).
    Slurm,
    /// A Kubernetes Indexed Job (`JOB_COMPLETION_INDEX`) with the count from `--shards`.
    Kubernetes,
}

impl fmt::Display for ShardSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ShardSource::Flag => "shard spec",
            ShardSource::Slurm => "Slurm job array",
            ShardSource::Kubernetes => "Kubernetes Indexed Job",
        })
    }
}

/// Everything that can go wrong choosing a shard or merging shard outputs.
#[derive(Debug, thiserror::Error)]
pub enum ShardError {
    /// A shard spec or environment variable that cannot be used.
    #[error("{0}")]
    Spec(String),
    /// The shard outputs do not add up to one complete run.
    #[error("cannot merge: {0}")]
    Merge(String),
    /// Reading or writing a file failed.
    #[error(transparent)]
    Data(#[from] DataError),
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl Shard {
    /// Shard `index` of `count` (0-based).
    pub fn new(index: usize, count: usize) -> Result<Shard, ShardError> {
        if count == 0 {
            return Err(ShardError::Spec(
                "the shard count must be at least 1".into(),
            ));
        }
        if index >= count {
            return Err(ShardError::Spec(format!(
                "shard index {index} is out of range for {count} shards (indices are 0-based: 0 to {})",
                count - 1
            )));
        }
        Ok(Shard { index, count })
    }

    /// Parses `I/N`, e.g. `0/4`.
    pub fn parse(spec: &str) -> Result<Shard, ShardError> {
        let bad = || ShardError::Spec(format!("shard `{spec}`: expected I/N, e.g. 0/4"));
        let (index, count) = spec.trim().split_once('/').ok_or_else(bad)?;
        let index = index.trim().parse().map_err(|_| bad())?;
        let count = count.trim().parse().map_err(|_| bad())?;
        Shard::new(index, count)
    }

    /// The shard index (0-based).
    pub fn index(&self) -> usize {
        self.index
    }

    /// How many shards the run is split into.
    pub fn count(&self) -> usize {
        self.count
    }

    /// The shard (of `count`) that owns the row `id`.
    pub fn owner(id: &str, count: usize) -> usize {
        // usize -> u64 is lossless on every supported platform; the remainder is below `count`.
        (draw(SHARD_SEED, id) % count.max(1) as u64) as usize
    }

    /// Whether this shard owns the row `id`.
    pub fn contains(&self, id: &str) -> bool {
        Shard::owner(id, self.count) == self.index
    }

    /// The shard's output for a run whose output is `output`: `scores.jsonl` becomes
    /// `scores.shard-1-of-4.jsonl` (the extension kept, so the format is unchanged).
    pub fn output_path(&self, output: &Path) -> PathBuf {
        let tag = format!("shard-{}-of-{}", self.index, self.count);
        let name = output
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let name = match name.rsplit_once('.') {
            Some((stem, ext)) if !stem.is_empty() => format!("{stem}.{tag}.{ext}"),
            _ => format!("{name}.{tag}"),
        };
        output.with_file_name(name)
    }

    /// Picks the shard of this process: `--shard I/N` (`flag`), else a Slurm job array, else a
    /// Kubernetes Indexed Job (its index, with the count from `shards`); `None` when none applies
    /// or the run is split one way. `env` looks up an environment variable.
    pub fn detect(
        flag: Option<&str>,
        shards: Option<usize>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<(Shard, ShardSource)>, ShardError> {
        let number = |name: &str| -> Result<Option<usize>, ShardError> {
            match env(name) {
                None => Ok(None),
                Some(text) if text.trim().is_empty() => Ok(None),
                Some(text) => text.trim().parse().map(Some).map_err(|_| {
                    ShardError::Spec(format!("{name}=`{text}` is not a non-negative integer"))
                }),
            }
        };
        let agree = |shard: Shard, source: ShardSource| -> Result<_, ShardError> {
            match shards {
                Some(n) if n != shard.count => Err(ShardError::Spec(format!(
                    "a shard count of {n} disagrees with the {source}, which splits the run {} ways",
                    shard.count
                ))),
                _ => Ok(Some((shard, source)).filter(|(s, _)| s.count > 1)),
            }
        };
        if let Some(spec) = flag {
            return agree(Shard::parse(spec)?, ShardSource::Flag);
        }
        if let Some(task) = number("SLURM_ARRAY_TASK_ID")? {
            if let Some(count) = shards {
                // With the count given, the task id is the shard index itself: resubmitting one
                // failed task (`sbatch --array=3`) then still runs shard 3 of N, where the array's
                // own count would say 1.
                return agree(Shard::new(task, count)?, ShardSource::Slurm);
            }
            let count = number("SLURM_ARRAY_TASK_COUNT")?.ok_or_else(|| {
                ShardError::Spec(
                    "SLURM_ARRAY_TASK_ID is set but SLURM_ARRAY_TASK_COUNT is not; give the shard \
                     count N or the shard I/N"
                        .into(),
                )
            })?;
            // `--array=1-8` numbers tasks from 1; the shard index counts from the first task.
            let first = number("SLURM_ARRAY_TASK_MIN")?.unwrap_or(0);
            let index = task
                .checked_sub(first)
                .filter(|&i| i < count)
                .ok_or_else(|| {
                    ShardError::Spec(format!(
                        "Slurm array task {task} (first {first}, {count} tasks) is not one of \
                     {count} consecutive tasks; submit with --array=0-{} or give the shard count N",
                        count.saturating_sub(1)
                    ))
                })?;
            return agree(Shard::new(index, count)?, ShardSource::Slurm);
        }
        if let Some(index) = number("JOB_COMPLETION_INDEX")? {
            let count = shards.ok_or_else(|| {
                ShardError::Spec(format!(
                    "JOB_COMPLETION_INDEX={index} (a Kubernetes Indexed Job) gives the shard \
                     index but not the count: give the shard count N (the Job's `completions`)"
                ))
            })?;
            return agree(Shard::new(index, count)?, ShardSource::Kubernetes);
        }
        if shards.is_some() {
            return Err(ShardError::Spec(
                "a shard count needs a shard index: a shard I/N, a Slurm array or JOB_COMPLETION_INDEX"
                    .into(),
            ));
        }
        Ok(None)
    }

    /// The marker that says the shard output `output` is complete: `<output>.complete.json`.
    pub fn marker_path(output: &Path) -> PathBuf {
        let mut name = output.as_os_str().to_owned();
        name.push(".complete.json");
        PathBuf::from(name)
    }

    /// Removes a finished run's marker before the shard runs again, so that a killed rerun (say
    /// with `--fresh`) is not mistaken for a complete one.
    pub fn clear_marker(output: &Path) -> Result<(), ShardError> {
        let marker = Shard::marker_path(output);
        match fs::remove_file(&marker) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(DataError::write(&marker, e).into())
            }
            _ => Ok(()),
        }
    }

    /// Records that this shard's run over `input` finished with `rows` rows in `output`. Call it
    /// only once the output is complete and synced.
    pub fn mark_complete(
        &self,
        output: &Path,
        input: &Path,
        rows: usize,
    ) -> Result<(), ShardError> {
        let marker = Shard::marker_path(output);
        let record = Marker {
            shard: *self,
            input: input.display().to_string(),
            rows,
        };
        let text = serde_json::to_string_pretty(&record)
            .map_err(|e| DataError::write(&marker, std::io::Error::other(e)))?;
        fs::write(&marker, text + "\n").map_err(|e| DataError::write(&marker, e))?;
        Ok(())
    }
}

/// What a shard's completion marker holds.
#[derive(Debug, Serialize, Deserialize)]
struct Marker {
    shard: Shard,
    input: String,
    rows: usize,
}

/// The ids of `input`'s rows in file order, as the readers assign them (the id column, else
/// `row-{index}`). Rows without a usable id are left out.
pub fn read_ids(input: &Path, options: &ReadOptions) -> Result<Vec<String>, DataError> {
    let options = ReadOptions {
        skip_invalid: true,
        ..options.clone()
    };
    let field = options.fields.id.clone();
    let outcome = read_objects(input, &options, |mut object: Map<String, Value>, index| {
        take_id(&mut object, &field, index).map(IdOnly)
    })?;
    Ok(outcome.rows.into_iter().map(|r| r.0).collect())
}

struct IdOnly(String);

impl crate::read::HasId for IdOnly {
    fn id(&self) -> &str {
        &self.0
    }
}

/// What [`merge`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MergeSummary {
    /// Shards merged.
    pub shards: usize,
    /// Rows written.
    pub rows: usize,
}

/// Merges the outputs of all shards of one run over `input` into `output`, in input order, so it
/// holds what a single process would have written (for JSONL shards, byte for byte).
///
/// Refuses, naming the files: a shard output without its completion marker (that run did not
/// finish), shards of different counts, a shard missing or given twice, a row in two shards or in
/// a shard that does not own it, and a row that is not in `input`.
pub fn merge(
    input: &Path,
    read_options: &ReadOptions,
    shard_files: &[PathBuf],
    output: &Path,
) -> Result<MergeSummary, ShardError> {
    if shard_files.is_empty() {
        return Err(ShardError::Merge("no shard outputs given".into()));
    }
    let id_field = read_options.fields.id.clone();
    let mut by_index: BTreeMap<usize, &PathBuf> = BTreeMap::new();
    let mut count = None;
    for file in shard_files {
        let marker_path = Shard::marker_path(file);
        let text = match fs::read_to_string(&marker_path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(ShardError::Merge(format!(
                    "{} is incomplete: {} is missing, so its run did not finish; rerun that shard \
                     (the same command resumes it)",
                    file.display(),
                    marker_path.display()
                )));
            }
            Err(e) => return Err(DataError::read(&marker_path, e).into()),
        };
        let marker: Marker = serde_json::from_str(&text)
            .map_err(|e| DataError::parse(&marker_path, None, e.to_string()))?;
        // Checked again: a hand-edited marker must not smuggle in an index past the count.
        let shard = Shard::new(marker.shard.index, marker.shard.count)
            .map_err(|e| DataError::parse(&marker_path, None, e.to_string()))?;
        match count {
            None => count = Some(shard.count),
            Some(n) if n != shard.count => {
                return Err(ShardError::Merge(format!(
                    "{} is shard {shard} but {} is shard {}/{n}: outputs of runs split \
                     different ways",
                    file.display(),
                    by_index
                        .values()
                        .next()
                        .map(|p| p.display().to_string())
                        .unwrap_or_default(),
                    by_index.keys().next().copied().unwrap_or_default(),
                )));
            }
            Some(_) => {}
        }
        if let Some(first) = by_index.insert(shard.index, file) {
            return Err(ShardError::Merge(format!(
                "shard {shard} is given twice: {} and {}",
                first.display(),
                file.display()
            )));
        }
    }
    let count = count.unwrap_or(1);
    let missing: Vec<String> = (0..count)
        .filter(|i| !by_index.contains_key(i))
        .map(|i| format!("{i}/{count}"))
        .collect();
    if !missing.is_empty() {
        return Err(ShardError::Merge(format!(
            "shard{} {} of {count} missing (e.g. {})",
            if missing.len() > 1 { "s" } else { "" },
            missing.join(", "),
            by_index
                .values()
                .next()
                .map(|p| p.display().to_string())
                .unwrap_or_default()
        )));
    }

    // id -> (shard, line)
    let mut rows: HashMap<String, (usize, String)> = HashMap::new();
    for (&index, file) in &by_index {
        for (position, id, line) in shard_lines(file, &id_field)? {
            let owner = Shard::owner(&id, count);
            if owner != index {
                return Err(ShardError::Merge(format!(
                    "{}: {position}: row `{id}` belongs to shard {owner}/{count}, not {index}/{count} \
                     (was the file written with another id field or input?)",
                    file.display()
                )));
            }
            if let Some((other, _)) = rows.insert(id.clone(), (index, line)) {
                return Err(ShardError::Merge(format!(
                    "row `{id}` is in shard {other}/{count} ({}) and again in {}: overlapping shards",
                    by_index
                        .get(&other)
                        .map(|p| p.display().to_string())
                        .unwrap_or_default(),
                    file.display()
                )));
            }
        }
    }

    let order = read_ids(input, read_options)?;
    let mut lines = Vec::with_capacity(rows.len());
    for id in &order {
        if let Some((_, line)) = rows.remove(id) {
            lines.push(line);
        }
    }
    if let Some((id, (index, _))) = rows.iter().next() {
        return Err(ShardError::Merge(format!(
            "row `{id}` of {} is not in {} (is that the run's input, with the same id field?)",
            by_index
                .get(index)
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
            input.display()
        )));
    }
    write_merged(output, &lines, &id_field)?;
    Ok(MergeSummary {
        shards: count,
        rows: lines.len(),
    })
}

/// Every row of a shard output with its id and its JSON text. Nothing is repaired: a complete
/// shard has no torn line, so one means the file was damaged after its run finished.
fn shard_lines(file: &Path, id_field: &str) -> Result<Vec<(Position, String, String)>, ShardError> {
    let mut out = Vec::new();
    match Format::resolve(file, None)? {
        Format::Parquet => {
            let mut err = None;
            crate::parquet::read_rows(
                file,
                |_| Ok(true),
                |position, row: OrderedJson| {
                    let line = serde_json::to_string(&row)
                        .map_err(|e| DataError::parse(file, Some(position), e.to_string()))?;
                    match extract_id(&line, id_field) {
                        Ok(id) => out.push((position, id, line)),
                        Err(e) => err = Some(DataError::parse(file, Some(position), e.to_string())),
                    }
                    Ok(())
                },
            )?;
            if let Some(e) = err {
                return Err(e.into());
            }
        }
        _ => {
            let reader = BufReader::new(File::open(file).map_err(|e| DataError::read(file, e))?);
            for (n, line) in reader.split(b'\n').enumerate() {
                let position = Position::Line(n + 1);
                let bytes = line.map_err(|e| DataError::read(file, e))?;
                let text = String::from_utf8(bytes)
                    .map_err(|e| DataError::parse(file, Some(position), e.to_string()))?;
                if text.trim().is_empty() {
                    continue;
                }
                let id = extract_id(&text, id_field).map_err(|e| {
                    let message = match e {
                        IdError::Syntax(m) | IdError::Invalid(m) => m,
                    };
                    DataError::parse(file, Some(position), message)
                })?;
                out.push((position, id, text));
            }
            let len = fs::metadata(file)
                .map_err(|e| DataError::read(file, e))?
                .len();
            if len > 0 && !ends_with_newline(file)? {
                return Err(DataError::parse(
                    file,
                    None,
                    "the last row has no newline: the file was cut short after its run finished",
                )
                .into());
            }
        }
    }
    Ok(out)
}

fn ends_with_newline(file: &Path) -> Result<bool, DataError> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = File::open(file).map_err(|e| DataError::read(file, e))?;
    f.seek(SeekFrom::End(-1))
        .map_err(|e| DataError::read(file, e))?;
    let mut last = [0u8; 1];
    f.read_exact(&mut last)
        .map_err(|e| DataError::read(file, e))?;
    Ok(last[0] == b'\n')
}

/// Writes the merged rows: a JSONL output as the lines themselves, built aside and renamed so a
/// failed merge leaves no half file; a Parquet output through the same journal a run writes.
fn write_merged(output: &Path, lines: &[String], id_field: &str) -> Result<(), DataError> {
    if Format::resolve(output, None)? == Format::Parquet {
        let options = WriteOptions {
            fresh: true,
            id_field: id_field.to_string(),
            ..WriteOptions::default()
        };
        let mut writer = RecordWriter::open(output, &options)?;
        for line in lines {
            let record: OrderedJson = serde_json::from_str(line)
                .map_err(|e| DataError::parse(output, None, e.to_string()))?;
            writer.write(&record)?;
        }
        writer.finish()?;
        return Ok(());
    }
    let mut temporary = output.as_os_str().to_owned();
    temporary.push(".merge.tmp");
    let temporary = PathBuf::from(temporary);
    let write = || -> std::io::Result<()> {
        let mut w = BufWriter::new(File::create(&temporary)?);
        for line in lines {
            w.write_all(line.as_bytes())?;
            w.write_all(b"\n")?;
        }
        w.into_inner().map_err(|e| e.into_error())?.sync_all()
    };
    if let Err(e) = write() {
        let _ = fs::remove_file(&temporary);
        return Err(DataError::write(output, e));
    }
    fs::rename(&temporary, output).map_err(|e| DataError::write(output, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| vars.get(k).cloned()
    }

    #[test]
    fn specs_parse_and_refuse() {
        assert_eq!(Shard::parse("1/3").unwrap(), Shard::new(1, 3).unwrap());
        for bad in ["3/3", "1", "a/3", "1/0", "-1/3", ""] {
            assert!(Shard::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn detection_order_flag_then_slurm_then_kubernetes() {
        let slurm = [
            ("SLURM_ARRAY_TASK_ID", "2"),
            ("SLURM_ARRAY_TASK_COUNT", "3"),
        ];
        let both = [slurm[0], slurm[1], ("JOB_COMPLETION_INDEX", "0")];
        let got = Shard::detect(Some("0/2"), None, env(&both))
            .unwrap()
            .unwrap();
        assert_eq!(got, (Shard::new(0, 2).unwrap(), ShardSource::Flag));
        let got = Shard::detect(None, None, env(&both)).unwrap().unwrap();
        assert_eq!(got, (Shard::new(2, 3).unwrap(), ShardSource::Slurm));
        let k8s = [("JOB_COMPLETION_INDEX", "1")];
        let got = Shard::detect(None, Some(4), env(&k8s)).unwrap().unwrap();
        assert_eq!(got, (Shard::new(1, 4).unwrap(), ShardSource::Kubernetes));
        assert!(Shard::detect(None, None, env(&[])).unwrap().is_none());
        // One shard is no split.
        assert!(
            Shard::detect(Some("0/1"), None, env(&both))
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn detection_errors_say_what_to_do() {
        let e = Shard::detect(None, None, env(&[("JOB_COMPLETION_INDEX", "1")])).unwrap_err();
        assert!(e.to_string().contains("shard count"), "{e}");
        let e = Shard::detect(None, None, env(&[("SLURM_ARRAY_TASK_ID", "1")])).unwrap_err();
        assert!(e.to_string().contains("SLURM_ARRAY_TASK_COUNT"), "{e}");
        let stepped = [
            ("SLURM_ARRAY_TASK_ID", "8"),
            ("SLURM_ARRAY_TASK_COUNT", "3"),
        ];
        let e = Shard::detect(None, None, env(&stepped)).unwrap_err();
        assert!(e.to_string().contains("--array=0-2"), "{e}");
        // With --shards, the task id is the index: one resubmitted task of an 8-way run.
        let resubmitted = [
            ("SLURM_ARRAY_TASK_ID", "3"),
            ("SLURM_ARRAY_TASK_COUNT", "1"),
        ];
        let got = Shard::detect(None, Some(8), env(&resubmitted))
            .unwrap()
            .unwrap();
        assert_eq!(got.0, Shard::new(3, 8).unwrap());
        let e = Shard::detect(None, Some(2), env(&resubmitted)).unwrap_err();
        assert!(e.to_string().contains("out of range"), "{e}");
        let e = Shard::detect(Some("1/3"), Some(4), env(&[])).unwrap_err();
        assert!(e.to_string().contains("disagrees"), "{e}");
        assert!(Shard::detect(None, Some(4), env(&[])).is_err());
        // Arrays numbered from 1.
        let from_one = [
            ("SLURM_ARRAY_TASK_ID", "3"),
            ("SLURM_ARRAY_TASK_COUNT", "3"),
            ("SLURM_ARRAY_TASK_MIN", "1"),
        ];
        let got = Shard::detect(None, None, env(&from_one)).unwrap().unwrap();
        assert_eq!(got.0, Shard::new(2, 3).unwrap());
    }

    #[test]
    fn every_row_has_exactly_one_owner_and_it_is_stable() {
        let shards: Vec<Shard> = (0..3).map(|i| Shard::new(i, 3).unwrap()).collect();
        let mut per = [0usize; 3];
        for n in 0..300 {
            let id = format!("row-{n}");
            let owners: Vec<usize> = shards
                .iter()
                .filter(|s| s.contains(&id))
                .map(|s| s.index)
                .collect();
            assert_eq!(owners.len(), 1);
            per[owners[0]] += 1;
        }
        assert!(per.iter().all(|&n| n > 60), "{per:?}");
        // Pinned (also computed in Python from the FNV-1a + splitmix64 definition): a change here
        // would reassign the rows of half-done sharded runs.
        let owners: Vec<usize> = (0..8)
            .map(|n| Shard::owner(&format!("row-{n}"), 3))
            .collect();
        assert_eq!(owners, [2, 2, 2, 1, 0, 1, 1, 1]);
        let owners: Vec<usize> = ["a", "b", "7"]
            .iter()
            .map(|id| Shard::owner(id, 4))
            .collect();
        assert_eq!(owners, [1, 1, 2]);
    }

    #[test]
    fn shard_outputs_keep_the_extension() {
        let s = Shard::new(1, 4).unwrap();
        assert_eq!(
            s.output_path(Path::new("out/scores.jsonl")),
            Path::new("out/scores.shard-1-of-4.jsonl")
        );
        assert_eq!(
            s.output_path(Path::new("p.parquet")),
            Path::new("p.shard-1-of-4.parquet")
        );
        assert_eq!(
            s.output_path(Path::new("noext")),
            Path::new("noext.shard-1-of-4")
        );
    }
}
