//! Incremental, resumable output writers.

use std::collections::HashSet;
use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::{DataError, Result};
use crate::format::Format;
use crate::id::{IdError, extract_id};
use crate::parquet;
use crate::resume::scan_and_repair;

/// How to open an output.
#[derive(Debug, Clone)]
pub struct WriteOptions {
    /// The file format; `None` picks it from the extension (`.jsonl` or `.parquet`).
    pub format: Option<Format>,
    /// Start over: discard whatever the output (and its journal) already holds.
    pub fresh: bool,
    /// The record field that identifies a row, used to resume. Default `id`.
    pub id_field: String,
}

impl Default for WriteOptions {
    fn default() -> Self {
        WriteOptions {
            format: None,
            fresh: false,
            id_field: "id".into(),
        }
    }
}

/// The journal a Parquet output is written through: `<output>.partial.jsonl`.
pub fn journal_path(output: &Path) -> PathBuf {
    with_suffix(output, ".partial.jsonl")
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = OsString::from(path.as_os_str());
    name.push(suffix);
    PathBuf::from(name)
}

/// Writes records (scored rows, [`PreferencePair`](crate::PreferencePair)s, anything
/// `Serialize` with an id) one at a time, so a killed process loses at most the row in flight.
///
/// JSONL outputs are appended to in place. Parquet cannot be appended to, so a Parquet output is
/// written as a JSONL journal next to it (`<output>.partial.jsonl`) and converted on
/// [`finish`](Self::finish).
///
/// Opening an output that already has rows resumes it: [`contains`](Self::contains) tells which
/// ids are done, and new records are appended after them.
#[derive(Debug)]
pub struct RecordWriter {
    output: PathBuf,
    format: Format,
    id_field: String,
    /// `None` while a finished Parquet output has only been read, not yet reopened for writing.
    journal: Option<Journal>,
    ids: HashSet<String>,
    resumed: usize,
}

/// The JSONL file rows are appended to, and the length of its complete rows.
#[derive(Debug)]
struct Journal {
    path: PathBuf,
    file: File,
    len: u64,
}

impl Journal {
    fn create(path: &Path) -> Result<Journal> {
        let file = File::create(path).map_err(|e| DataError::write(path, e))?;
        Ok(Journal {
            path: path.to_path_buf(),
            file,
            len: 0,
        })
    }

    /// Opens an existing journal, repairing a torn last row; returns the ids it holds.
    fn resume(path: &Path, id_field: &str) -> Result<(Journal, HashSet<String>)> {
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(|e| DataError::read(path, e))?;
        let scan = scan_and_repair(&mut file, path, id_field)?;
        let journal = Journal {
            path: path.to_path_buf(),
            file,
            len: scan.len,
        };
        Ok((journal, scan.ids.into_keys().collect()))
    }

    /// Appends whole rows. On failure the file is cut back to its last complete row, so it
    /// never ends mid-row and a later run can resume from it.
    fn append(&mut self, bytes: &[u8]) -> Result<()> {
        match self.file.write_all(bytes).and_then(|()| self.file.flush()) {
            Ok(()) => {
                self.len += bytes.len() as u64;
                Ok(())
            }
            Err(error) => {
                let rollback = self
                    .file
                    .set_len(self.len)
                    .and_then(|()| self.file.seek(SeekFrom::Start(self.len)).map(drop));
                if let Err(rollback) = rollback {
                    // Resume still cuts a torn last row away, so nothing is lost, only untidy.
                    tracing::error!(
                        path = %self.path.display(),
                        "cannot cut a partly written row away: {rollback}"
                    );
                }
                Err(DataError::write(&self.path, error))
            }
        }
    }
}

impl RecordWriter {
    /// Opens `path` for writing, resuming whatever it already holds unless `options.fresh`.
    ///
    /// For a `.parquet` output the journal, if present, is what holds the rows (it is newer than
    /// any Parquet file beside it); otherwise a finished Parquet file's ids are read, and its rows
    /// are copied into a new journal before the first new record is written.
    pub fn open(path: impl AsRef<Path>, options: &WriteOptions) -> Result<RecordWriter> {
        let output = path.as_ref().to_path_buf();
        let format = Format::resolve(&output, options.format)?;
        let id_field = options.id_field.clone();
        let (journal, ids) = match format {
            Format::Json => {
                return Err(DataError::Format {
                    path: output,
                    message: "cannot write JSON output row by row; use .jsonl or .parquet".into(),
                });
            }
            Format::Jsonl if options.fresh || !output.exists() => {
                (Some(Journal::create(&output)?), HashSet::new())
            }
            Format::Jsonl => {
                let (journal, ids) = Journal::resume(&output, &id_field)?;
                (Some(journal), ids)
            }
            Format::Parquet => {
                let journal_path = journal_path(&output);
                if options.fresh {
                    remove_if_exists(&output)?;
                    (Some(Journal::create(&journal_path)?), HashSet::new())
                } else if journal_path.exists() {
                    let (journal, ids) = Journal::resume(&journal_path, &id_field)?;
                    (Some(journal), ids)
                } else if output.exists() {
                    (None, read_parquet_ids(&output, &id_field)?)
                } else {
                    (Some(Journal::create(&journal_path)?), HashSet::new())
                }
            }
        };
        let resumed = ids.len();
        if resumed > 0 {
            tracing::info!(output = %output.display(), rows = resumed, "resuming output");
        }
        Ok(RecordWriter {
            output,
            format,
            id_field,
            journal,
            ids,
            resumed,
        })
    }

    /// The output path this writer was opened on.
    pub fn path(&self) -> &Path {
        &self.output
    }

    /// Whether a record with `id` is already in the output.
    pub fn contains(&self, id: &str) -> bool {
        self.ids.contains(id)
    }

    /// The ids in the output: those found on open plus those written since.
    pub fn ids(&self) -> &HashSet<String> {
        &self.ids
    }

    /// How many rows the output already held when it was opened.
    pub fn resumed(&self) -> usize {
        self.resumed
    }

    /// How many rows the output holds now.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether the output holds no rows.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Writes one record and flushes it to the OS. `record` must serialize to a JSON object
    /// with an id (string or integer) not yet in the output.
    pub fn write<T: Serialize + ?Sized>(&mut self, record: &T) -> Result<()> {
        let mut line = String::new();
        let id = self.encode(record, &mut line)?;
        if self.ids.contains(&id) {
            return Err(DataError::DuplicateRecord {
                path: self.output.clone(),
                id,
            });
        }
        self.journal()?.append(line.as_bytes())?;
        self.ids.insert(id);
        Ok(())
    }

    /// Writes several records with one write and one flush; either all of them land or none.
    pub fn write_batch<'a, T, I>(&mut self, records: I) -> Result<()>
    where
        T: Serialize + 'a,
        I: IntoIterator<Item = &'a T>,
    {
        let mut text = String::new();
        let mut new_ids = Vec::new();
        for record in records {
            let id = self.encode(record, &mut text)?;
            if self.ids.contains(&id) || new_ids.contains(&id) {
                return Err(DataError::DuplicateRecord {
                    path: self.output.clone(),
                    id,
                });
            }
            new_ids.push(id);
        }
        if new_ids.is_empty() {
            return Ok(());
        }
        self.journal()?.append(text.as_bytes())?;
        self.ids.extend(new_ids);
        Ok(())
    }

    /// Makes the output complete and durable: syncs a JSONL output, or converts a Parquet
    /// output's journal to Parquet and removes the journal. Returns the number of rows.
    ///
    /// A writer dropped without `finish` keeps all rows written; the next `open` resumes them.
    pub fn finish(self) -> Result<usize> {
        let rows = self.ids.len();
        let Some(journal) = self.journal else {
            return Ok(rows);
        };
        journal
            .file
            .sync_all()
            .map_err(|e| DataError::write(&journal.path, e))?;
        if self.format != Format::Parquet {
            return Ok(rows);
        }
        drop(journal.file);
        // Written aside and renamed, so the output is never a half-written Parquet file and the
        // journal is only removed once the Parquet file is whole.
        let temporary = with_suffix(&self.output, ".tmp");
        if let Err(error) = parquet::write_journal(&journal.path, &temporary, &self.output) {
            let _ = fs::remove_file(&temporary);
            return Err(error);
        }
        fs::rename(&temporary, &self.output).map_err(|e| DataError::write(&self.output, e))?;
        fs::remove_file(&journal.path).map_err(|e| DataError::write(&journal.path, e))?;
        tracing::info!(output = %self.output.display(), rows, "wrote Parquet output");
        Ok(rows)
    }

    /// Serializes `record` as one line appended to `text`; returns its id.
    fn encode<T: Serialize + ?Sized>(&self, record: &T, text: &mut String) -> Result<String> {
        let line = serde_json::to_string(record).map_err(|e| DataError::Record {
            path: self.output.clone(),
            message: e.to_string(),
        })?;
        let id = extract_id(&line, &self.id_field).map_err(|e| DataError::Record {
            path: self.output.clone(),
            message: match e {
                IdError::Syntax(message) | IdError::Invalid(message) => message,
            },
        })?;
        text.push_str(&line);
        text.push('\n');
        Ok(id)
    }

    /// The journal to append to, first copying a finished Parquet output's rows into a new one.
    fn journal(&mut self) -> Result<&mut Journal> {
        let journal = match self.journal.take() {
            Some(journal) => journal,
            None => reopen_parquet(&self.output)?,
        };
        Ok(self.journal.insert(journal))
    }
}

/// Copies the rows of the finished Parquet file `output` into its journal, so more can be
/// appended. The copy is built aside and renamed: a journal, once it exists, is trusted over the
/// Parquet file, so it must never be a partial copy.
fn reopen_parquet(output: &Path) -> Result<Journal> {
    let journal = journal_path(output);
    let temporary = with_suffix(&journal, ".tmp");
    let copy = || -> Result<()> {
        let file = File::create(&temporary).map_err(|e| DataError::write(&journal, e))?;
        let mut writer = BufWriter::new(file);
        parquet::read_rows(
            output,
            |_| Ok(true),
            |_, row| {
                serde_json::to_writer(&mut writer, &row)
                    .map_err(|e| DataError::write(&journal, std::io::Error::other(e)))?;
                writer
                    .write_all(b"\n")
                    .map_err(|e| DataError::write(&journal, e))
            },
        )?;
        let file = writer
            .into_inner()
            .map_err(|e| DataError::write(&journal, e.into_error()))?;
        file.sync_all().map_err(|e| DataError::write(&journal, e))?;
        fs::rename(&temporary, &journal).map_err(|e| DataError::write(&journal, e))
    };
    if let Err(error) = copy() {
        let _ = fs::remove_file(&temporary);
        return Err(error);
    }
    tracing::info!(output = %output.display(), "reopened finished Parquet output to append");
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&journal)
        .map_err(|e| DataError::read(&journal, e))?;
    let len = file
        .seek(SeekFrom::End(0))
        .map_err(|e| DataError::read(&journal, e))?;
    Ok(Journal {
        path: journal,
        file,
        len,
    })
}

/// The ids of a finished Parquet output, reading only the id column.
fn read_parquet_ids(output: &Path, id_field: &str) -> Result<HashSet<String>> {
    let mut ids = HashSet::new();
    parquet::read_rows(
        output,
        |field| Ok(field.name() == id_field),
        |position, row| {
            let id = match row.get(id_field).map(|id| id.clone().into_value()) {
                Some(serde_json::Value::String(id)) => id,
                Some(serde_json::Value::Number(id)) if id.is_i64() || id.is_u64() => id.to_string(),
                _ => {
                    return Err(DataError::parse(
                        output,
                        Some(position),
                        format!("no usable `{id_field}` (a string or an integer)"),
                    ));
                }
            };
            if !ids.insert(id.clone()) {
                return Err(DataError::parse(
                    output,
                    Some(position),
                    format!("duplicate `{id_field}` `{id}`"),
                ));
            }
            Ok(())
        },
    )?;
    Ok(ids)
}

fn remove_if_exists(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(DataError::write(path, e)),
    }
}
