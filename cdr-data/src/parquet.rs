//! Parquet files: reading rows as JSON objects, and writing a JSONL journal out as Parquet.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;

use arrow_schema::{DataType, Field};
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::arrow_writer::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;

use crate::arrow_json::{
    Kind, array_to_json, json_text_fields, merge_fields, records_to_batch, schema_of,
};
use crate::error::{DataError, Position, Result};
use crate::id::strip_location;
use crate::ordered_json::{self, OrderedJson};

/// Rows per Arrow batch, both ways: small enough that long responses stay cheap in memory.
const BATCH_ROWS: usize = 1024;

/// Whether [`array_to_json`] can convert a column of this type.
pub(crate) fn is_supported(data_type: &DataType) -> bool {
    match data_type {
        DataType::Null
        | DataType::Boolean
        | DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32
        | DataType::UInt64
        | DataType::Float32
        | DataType::Float64
        | DataType::Utf8
        | DataType::LargeUtf8
        | DataType::Utf8View => true,
        DataType::List(item) | DataType::LargeList(item) | DataType::FixedSizeList(item, _) => {
            is_supported(item.data_type())
        }
        DataType::Struct(fields) => fields.iter().all(|f| is_supported(f.data_type())),
        DataType::Dictionary(_, values) => is_supported(values),
        _ => false,
    }
}

/// Calls `each` with every row of the Parquet file at `path`, as a JSON object, in file order.
///
/// `select` picks the columns to read (unread columns cost nothing); it sees each top-level field
/// and may fail, e.g. when a needed column has a type cdr cannot read.
pub(crate) fn read_rows(
    path: &Path,
    mut select: impl FnMut(&Field) -> Result<bool>,
    mut each: impl FnMut(Position, OrderedJson) -> Result<()>,
) -> Result<()> {
    let file = File::open(path).map_err(|e| DataError::read(path, e))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file)
        .map_err(|e| DataError::parse(path, None, format!("not a readable Parquet file: {e}")))?;
    let mut roots = Vec::new();
    for (index, field) in builder.schema().fields().iter().enumerate() {
        if select(field)? {
            roots.push(index);
        }
    }
    let mask = ProjectionMask::roots(builder.parquet_schema(), roots);
    let reader = builder
        .with_projection(mask)
        .with_batch_size(BATCH_ROWS)
        .build()
        .map_err(|e| DataError::parse(path, None, e.to_string()))?;
    let mut row = 0usize;
    for batch in reader {
        let batch = batch.map_err(|e| {
            DataError::parse(
                path,
                Some(Position::Row(row)),
                format!("cannot decode: {e}"),
            )
        })?;
        let schema = batch.schema();
        let mut columns = Vec::with_capacity(batch.num_columns());
        for (field, column) in schema.fields().iter().zip(batch.columns()) {
            let values = array_to_json(column.as_ref()).map_err(|unsupported| {
                DataError::parse(
                    path,
                    None,
                    format!(
                        "column `{}` has type {}, which cdr cannot read",
                        field.name(),
                        unsupported.0
                    ),
                )
            })?;
            columns.push((field.name(), values));
        }
        for i in 0..batch.num_rows() {
            let entries = columns
                .iter_mut()
                .map(|(name, values)| {
                    let value = values.get_mut(i).map(std::mem::take).unwrap_or_default();
                    ((*name).clone(), value)
                })
                .collect();
            each(Position::Row(row), OrderedJson::Object(entries))?;
            row += 1;
        }
    }
    Ok(())
}

/// Writes the JSONL `journal` as a Parquet file at `dest`. Errors name `output`, the file the
/// user asked for, as `dest` is only its temporary name.
pub(crate) fn write_journal(journal: &Path, dest: &Path, output: &Path) -> Result<usize> {
    // Two passes keep memory to one batch: the schema needs every record, the data one batch.
    let mut fields: Vec<(String, Kind)> = Vec::new();
    let mut rows = 0usize;
    for_each_record(journal, |_, record| {
        if let Kind::Struct(record_fields) = Kind::of(&record) {
            merge_fields(&mut fields, record_fields);
        }
        rows += 1;
        Ok(())
    })?;
    let json_text = json_text_fields(&fields);
    if !json_text.is_empty() {
        tracing::warn!(
            output = %output.display(),
            fields = ?json_text,
            "fields with values of mixed types are stored as JSON text"
        );
    }
    let schema = schema_of(&fields);
    let write_error =
        |e: &dyn std::fmt::Display| DataError::write(output, std::io::Error::other(e.to_string()));
    let file = File::create(dest).map_err(|e| DataError::write(output, e))?;
    let properties = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_max_row_group_row_count(Some(8 * BATCH_ROWS))
        .build();
    let mut writer = ArrowWriter::try_new(file, schema.clone(), Some(properties))
        .map_err(|e| write_error(&e))?;
    let mut batch = Vec::with_capacity(BATCH_ROWS);
    let flush = |batch: &mut Vec<OrderedJson>, writer: &mut ArrowWriter<File>| -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let records = records_to_batch(&schema, &fields, batch).map_err(|e| write_error(&e))?;
        writer.write(&records).map_err(|e| write_error(&e))?;
        batch.clear();
        Ok(())
    };
    for_each_record(journal, |_, record| {
        batch.push(record);
        if batch.len() == BATCH_ROWS {
            flush(&mut batch, &mut writer)?;
        }
        Ok(())
    })?;
    flush(&mut batch, &mut writer)?;
    let file = writer.into_inner().map_err(|e| write_error(&e))?;
    file.sync_all().map_err(|e| DataError::write(output, e))?;
    Ok(rows)
}

/// Calls `each` with every record of a JSONL journal (already repaired, so every line parses).
fn for_each_record(
    journal: &Path,
    mut each: impl FnMut(usize, OrderedJson) -> Result<()>,
) -> Result<()> {
    let file = File::open(journal).map_err(|e| DataError::read(journal, e))?;
    let mut reader = BufReader::new(file);
    let mut line = String::new();
    let mut number = 0usize;
    loop {
        line.clear();
        let n = reader
            .read_line(&mut line)
            .map_err(|e| DataError::read(journal, e))?;
        if n == 0 {
            return Ok(());
        }
        number += 1;
        if line.trim().is_empty() {
            continue;
        }
        let record = ordered_json::parse(&line).map_err(|e| {
            DataError::parse(journal, Some(Position::Line(number)), strip_location(&e))
        })?;
        each(number, record)?;
    }
}
