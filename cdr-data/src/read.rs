//! Reading input datasets into rows.

use std::collections::HashMap;
use std::path::Path;

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::error::{DataError, Position, Result};
use crate::fields::Fields;
use crate::format::Format;
use crate::hub::input_files;
use crate::normalize::{RowError, normalize};
use crate::ordered_json::OrderedJson;
use crate::parquet::is_supported;
use crate::row::{BestOfNRow, PairwiseRow, Row};
use crate::{json, jsonl, parquet};

/// How to read an input dataset.
#[derive(Debug, Clone, Default)]
pub struct ReadOptions {
    /// The file format; `None` picks it from the extension.
    pub format: Option<Format>,
    /// Column names.
    pub fields: Fields,
    /// Step over bad rows (reporting them in [`ReadOutcome::skipped`]) instead of failing.
    pub skip_invalid: bool,
}

/// A row left out because it was invalid (only with [`ReadOptions::skip_invalid`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// Where the row is in the file.
    pub position: Position,
    /// The column at fault, if the problem is one column.
    pub field: Option<String>,
    /// What is wrong, naming the file and position.
    pub message: String,
}

/// The rows of a file, in file order, and the rows skipped as invalid.
#[derive(Debug, Clone, PartialEq)]
pub struct ReadOutcome<T> {
    /// The valid rows, in file order.
    pub rows: Vec<T>,
    /// The invalid rows, in file order; always empty unless `skip_invalid` is set.
    pub skipped: Vec<Skipped>,
}

/// Reads every row of `path`, in whichever shape each row has.
pub fn read_rows(path: impl AsRef<Path>, options: &ReadOptions) -> Result<ReadOutcome<Row>> {
    read_as(path.as_ref(), options, Ok)
}

/// Reads a dataset of `chosen` / `rejected` rows; a row of another shape is an invalid row.
pub fn read_pairwise(
    path: impl AsRef<Path>,
    options: &ReadOptions,
) -> Result<ReadOutcome<PairwiseRow>> {
    let fields = &options.fields;
    read_as(path.as_ref(), options, |row| match row {
        Row::Pairwise(row) => Ok(row),
        Row::BestOfN(_) => Err(RowError {
            field: None,
            message: format!(
                "expected a pairwise row with `{}` and `{}`",
                fields.chosen, fields.rejected
            ),
        }),
    })
}

/// Reads a dataset of `responses` rows (or single-response `messages` rows); a pairwise row is
/// an invalid row.
pub fn read_best_of_n(
    path: impl AsRef<Path>,
    options: &ReadOptions,
) -> Result<ReadOutcome<BestOfNRow>> {
    let fields = &options.fields;
    read_as(path.as_ref(), options, |row| match row {
        Row::BestOfN(row) => Ok(row),
        Row::Pairwise(_) => Err(RowError {
            field: None,
            message: format!(
                "expected a best-of-N row with `{}` or `{}`",
                fields.responses, fields.messages
            ),
        }),
    })
}

fn read_as<T: HasId>(
    path: &Path,
    options: &ReadOptions,
    mut shape: impl FnMut(Row) -> Result<T, RowError>,
) -> Result<ReadOutcome<T>> {
    read_objects(path, options, |object, index| {
        normalize(object, &options.fields, index).and_then(&mut shape)
    })
}

/// Reads every row of `path` as a JSON object and turns it into a `T` with `parse(object, row
/// index)`, checking ids for duplicates; bad rows fail the read or, with `skip_invalid`, are
/// collected.
pub(crate) fn read_objects<T: HasId>(
    path: &Path,
    options: &ReadOptions,
    parse: impl FnMut(Map<String, Value>, usize) -> Result<T, RowError>,
) -> Result<ReadOutcome<T>> {
    // One file, or the files of a dataset split (a hub id or a directory), read as one sequence.
    let files = input_files(path, options.format)?;
    collect_objects(path, options, parse, |handle| {
        for (file, format) in &files {
            let file = file.as_path();
            read_file(file, *format, &options.fields, &mut |position, object| {
                handle(file, position, object)
            })?;
        }
        Ok(())
    })
}

/// Hands every row of one file to `handle` as a JSON object (or why it is not one).
fn read_file(
    path: &Path,
    format: Format,
    fields: &Fields,
    handle: &mut dyn FnMut(Position, Result<Map<String, Value>, String>) -> Result<()>,
) -> Result<()> {
    match format {
        Format::Jsonl => jsonl::for_each_line(path, |position, value| {
            handle(position, value.and_then(into_object))
        }),
        Format::Json => {
            json::for_each_element(path, |position, value| handle(position, into_object(value)))
        }
        Format::Parquet => parquet::read_rows(
            path,
            |field| {
                if field.name().starts_with("__index_level_") {
                    // pandas writes its row index as a column; it is not data.
                    Ok(false)
                } else if is_supported(field.data_type()) {
                    Ok(true)
                } else if fields.is_known(field.name()) {
                    Err(DataError::parse(
                        path,
                        None,
                        format!(
                            "column `{}` has type {}, which cdr cannot read",
                            field.name(),
                            field.data_type()
                        ),
                    ))
                } else {
                    tracing::warn!(
                        path = %path.display(),
                        column = %field.name(),
                        data_type = %field.data_type(),
                        "leaving out a column of a type cdr cannot read"
                    );
                    Ok(false)
                }
            },
            |position, row| handle(position, into_object(row.into_value())),
        ),
    }
}

/// Rows already in memory (JSON values, e.g. handed over from Python), normalized exactly as a
/// file's rows are: each value must be an object in one of the layouts [`read_rows`] accepts.
/// `origin` names the rows in error messages; positions are 0-based [`Position::Index`]es.
pub fn rows_from_values(
    values: impl IntoIterator<Item = Value>,
    origin: &Path,
    options: &ReadOptions,
) -> Result<ReadOutcome<Row>> {
    let fields = &options.fields;
    collect_objects(
        origin,
        options,
        |object, index| normalize(object, fields, index),
        |handle| {
            for (index, value) in values.into_iter().enumerate() {
                handle(origin, Position::Index(index), into_object(value))?;
            }
            Ok(())
        },
    )
}

/// Takes one row's file, position and object (or why it is not one).
type Handle<'h> = dyn FnMut(&Path, Position, Result<Map<String, Value>, String>) -> Result<()> + 'h;

/// Turns each object `feed` hands over into a `T` with `parse(object, row index)`, checking ids
/// for duplicates; bad rows fail the read or, with `skip_invalid`, are collected. `origin` names
/// the input in the summary log; errors name the file `feed` hands over.
fn collect_objects<T: HasId>(
    origin: &Path,
    options: &ReadOptions,
    mut parse: impl FnMut(Map<String, Value>, usize) -> Result<T, RowError>,
    feed: impl FnOnce(&mut Handle<'_>) -> Result<()>,
) -> Result<ReadOutcome<T>> {
    let mut outcome = ReadOutcome {
        rows: Vec::new(),
        skipped: Vec::new(),
    };
    let mut seen: HashMap<String, Position> = HashMap::new();
    // Counts every row, valid or not, so derived ids do not shift when `skip_invalid` drops one.
    let mut index = 0usize;
    let mut handle =
        |path: &Path, position: Position, object: Result<Map<String, Value>, String>| {
            let row_index = index;
            index += 1;
            let row = object
                .map_err(|message| DataError::parse(path, Some(position), message))
                .and_then(|object| {
                    parse(object, row_index).map_err(|e| DataError::Row {
                        path: path.to_path_buf(),
                        position,
                        field: e.field,
                        message: e.message,
                    })
                })
                .and_then(|row| match seen.get(row.id()) {
                    Some(&first) => Err(DataError::DuplicateId {
                        path: path.to_path_buf(),
                        id: row.id().to_owned(),
                        first,
                        second: position,
                    }),
                    None => Ok(row),
                });
            match row {
                Ok(row) => {
                    seen.insert(row.id().to_owned(), position);
                    outcome.rows.push(row);
                    Ok(())
                }
                Err(error) if options.skip_invalid => {
                    // The caller reports `skipped` (one line per row); a warning here would repeat it.
                    tracing::debug!("skipping invalid row: {error}");
                    outcome.skipped.push(Skipped {
                        position,
                        field: error.field().map(str::to_owned),
                        message: error.to_string(),
                    });
                    Ok(())
                }
                Err(error) => Err(error),
            }
        };
    feed(&mut handle)?;
    if !outcome.skipped.is_empty() {
        tracing::debug!(
            path = %origin.display(),
            skipped = outcome.skipped.len(),
            kept = outcome.rows.len(),
            "skipped invalid rows"
        );
    }
    Ok(outcome)
}

/// Reads back every record of an output file (JSONL, JSON or Parquet) as `T`, e.g.
/// [`PreferencePair`](crate::PreferencePair) or `serde_json::Value`.
///
/// Unlike resuming a writer, this repairs nothing: a torn last line is an error.
pub fn read_records<T: DeserializeOwned>(
    path: impl AsRef<Path>,
    format: Option<Format>,
) -> Result<Vec<T>> {
    let path = path.as_ref();
    let mut records = Vec::new();
    let mut push = |position: Position, value: Value| {
        let record = serde_json::from_value(value)
            .map_err(|e| DataError::parse(path, Some(position), e.to_string()))?;
        records.push(record);
        Ok(())
    };
    match Format::resolve(path, format)? {
        Format::Jsonl => jsonl::for_each_line(path, |position, value| {
            let value = value.map_err(|message| DataError::parse(path, Some(position), message))?;
            push(position, value)
        })?,
        Format::Json => json::for_each_element(path, &mut push)?,
        Format::Parquet => parquet::read_rows(
            path,
            |_| Ok(true),
            |position, row: OrderedJson| push(position, row.into_value()),
        )?,
    }
    Ok(records)
}

fn into_object(value: Value) -> Result<Map<String, Value>, String> {
    match value {
        Value::Object(object) => Ok(object),
        Value::Array(_) => Err("expected a JSON object, got a list".into()),
        Value::String(_) => Err("expected a JSON object, got a string".into()),
        Value::Number(_) => Err("expected a JSON object, got a number".into()),
        Value::Bool(_) => Err("expected a JSON object, got a boolean".into()),
        Value::Null => Err("expected a JSON object, got null".into()),
    }
}

/// Rows the duplicate-id check can look into.
pub(crate) trait HasId {
    fn id(&self) -> &str;
}

impl HasId for Row {
    fn id(&self) -> &str {
        Row::id(self)
    }
}

impl HasId for PairwiseRow {
    fn id(&self) -> &str {
        &self.id
    }
}

impl HasId for BestOfNRow {
    fn id(&self) -> &str {
        &self.id
    }
}
