//! Conversion between Arrow arrays and JSON values.
//!
//! Parquet inputs become JSON objects so one normalizer serves every format; JSONL journals
//! become Arrow batches with a schema inferred from the records, since the caller's record type
//! is only known to serde.

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{
    ArrowPrimitiveType, Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type,
    UInt8Type, UInt16Type, UInt32Type, UInt64Type,
};
use arrow_array::{
    Array, ArrayRef, BooleanArray, Float64Array, GenericListArray, Int64Array, ListArray,
    OffsetSizeTrait, PrimitiveArray, RecordBatch, StringArray, StructArray,
};
use arrow_buffer::{NullBuffer, OffsetBuffer};
use arrow_schema::{ArrowError, DataType, Field, Fields, Schema, SchemaRef};
use serde_json::Number;

use crate::ordered_json::OrderedJson;

/// An Arrow type with no JSON counterpart cdr knows (timestamps, binary, decimals...).
#[derive(Debug, Clone)]
pub(crate) struct Unsupported(pub DataType);

/// Every value of `array` as JSON; nulls become `Null`.
pub(crate) fn array_to_json(array: &dyn Array) -> Result<Vec<OrderedJson>, Unsupported> {
    let int = |n: i64| OrderedJson::Number(n.into());
    let float = |f: f64| Number::from_f64(f).map_or(OrderedJson::Null, OrderedJson::Number);
    Ok(match array.data_type() {
        DataType::Null => vec![OrderedJson::Null; array.len()],
        DataType::Boolean => array
            .as_boolean()
            .iter()
            .map(|v| v.map_or(OrderedJson::Null, OrderedJson::Bool))
            .collect(),
        DataType::Int8 => primitive::<Int8Type>(array, |v| int(v.into())),
        DataType::Int16 => primitive::<Int16Type>(array, |v| int(v.into())),
        DataType::Int32 => primitive::<Int32Type>(array, |v| int(v.into())),
        DataType::Int64 => primitive::<Int64Type>(array, int),
        DataType::UInt8 => primitive::<UInt8Type>(array, |v| int(v.into())),
        DataType::UInt16 => primitive::<UInt16Type>(array, |v| int(v.into())),
        DataType::UInt32 => primitive::<UInt32Type>(array, |v| int(v.into())),
        DataType::UInt64 => primitive::<UInt64Type>(array, |v| OrderedJson::Number(v.into())),
        DataType::Float32 => primitive::<Float32Type>(array, |v| float(v.into())),
        DataType::Float64 => primitive::<Float64Type>(array, float),
        DataType::Utf8 => strings(array.as_string::<i32>().iter()),
        DataType::LargeUtf8 => strings(array.as_string::<i64>().iter()),
        DataType::Utf8View => strings(array.as_string_view().iter()),
        DataType::List(_) => list(array.as_list::<i32>())?,
        DataType::LargeList(_) => list(array.as_list::<i64>())?,
        DataType::FixedSizeList(_, size) => {
            let array = array.as_fixed_size_list();
            let size = usize::try_from(*size).unwrap_or(0);
            let mut values = array_to_json(array.values().as_ref())?;
            (0..array.len())
                .map(|i| {
                    if array.is_null(i) {
                        OrderedJson::Null
                    } else {
                        let start = (array.offset() + i) * size;
                        take_range(&mut values, start, start + size)
                    }
                })
                .collect()
        }
        DataType::Struct(fields) => {
            let array = array.as_struct();
            let mut columns = array
                .columns()
                .iter()
                .map(|column| array_to_json(column.as_ref()))
                .collect::<Result<Vec<_>, _>>()?;
            (0..array.len())
                .map(|i| {
                    if array.is_null(i) {
                        return OrderedJson::Null;
                    }
                    let entries = fields
                        .iter()
                        .zip(columns.iter_mut())
                        .map(|(field, column)| {
                            let value = column.get_mut(i).map(std::mem::take).unwrap_or_default();
                            (field.name().clone(), value)
                        })
                        .collect();
                    OrderedJson::Object(entries)
                })
                .collect()
        }
        DataType::Dictionary(_, _) => {
            let Some(dictionary) = array.as_any_dictionary_opt() else {
                return Err(Unsupported(array.data_type().clone()));
            };
            let values = array_to_json(dictionary.values().as_ref())?;
            let keys = dictionary.normalized_keys();
            (0..array.len())
                .map(|i| {
                    if array.is_null(i) {
                        OrderedJson::Null
                    } else {
                        keys.get(i)
                            .and_then(|&key| values.get(key))
                            .cloned()
                            .unwrap_or_default()
                    }
                })
                .collect()
        }
        other => return Err(Unsupported(other.clone())),
    })
}

fn primitive<T: ArrowPrimitiveType>(
    array: &dyn Array,
    convert: impl Fn(T::Native) -> OrderedJson,
) -> Vec<OrderedJson> {
    let array: &PrimitiveArray<T> = array.as_primitive();
    array
        .iter()
        .map(|v| v.map_or(OrderedJson::Null, &convert))
        .collect()
}

fn strings<'a>(values: impl Iterator<Item = Option<&'a str>>) -> Vec<OrderedJson> {
    values
        .map(|v| v.map_or(OrderedJson::Null, |s| OrderedJson::String(s.to_owned())))
        .collect()
}

fn list<O: OffsetSizeTrait>(array: &GenericListArray<O>) -> Result<Vec<OrderedJson>, Unsupported> {
    let mut values = array_to_json(array.values().as_ref())?;
    let offsets = array.value_offsets();
    Ok((0..array.len())
        .map(|i| {
            if array.is_null(i) {
                OrderedJson::Null
            } else {
                take_range(
                    &mut values,
                    offsets[i].as_usize(),
                    offsets[i + 1].as_usize(),
                )
            }
        })
        .collect())
}

/// Moves `values[start..end]` out into an array; list ranges never overlap, so nothing is
/// needed twice.
fn take_range(values: &mut [OrderedJson], start: usize, end: usize) -> OrderedJson {
    let items = values
        .get_mut(start..end)
        .map(|slice| slice.iter_mut().map(std::mem::take).collect())
        .unwrap_or_default();
    OrderedJson::Array(items)
}

/// The Arrow type inferred for one JSON field across all records.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) enum Kind {
    /// Only nulls seen so far.
    #[default]
    Unknown,
    Bool,
    Int,
    Float,
    Str,
    List(Box<Kind>),
    Struct(Vec<(String, Kind)>),
    /// Values of clashing types; stored as JSON text so nothing is lost.
    Json,
}

impl Kind {
    pub(crate) fn of(value: &OrderedJson) -> Kind {
        match value {
            OrderedJson::Null => Kind::Unknown,
            OrderedJson::Bool(_) => Kind::Bool,
            OrderedJson::Number(n) if n.is_i64() => Kind::Int,
            OrderedJson::Number(_) => Kind::Float,
            OrderedJson::String(_) => Kind::Str,
            OrderedJson::Array(items) => Kind::List(Box::new(
                items
                    .iter()
                    .fold(Kind::Unknown, |kind, item| kind.merge(Kind::of(item))),
            )),
            OrderedJson::Object(entries) => Kind::Struct(
                entries
                    .iter()
                    .map(|(name, value)| (name.clone(), Kind::of(value)))
                    .collect(),
            ),
        }
    }

    /// The narrowest kind that holds values of both kinds.
    pub(crate) fn merge(self, other: Kind) -> Kind {
        match (self, other) {
            (Kind::Unknown, kind) | (kind, Kind::Unknown) => kind,
            (Kind::Int, Kind::Float) | (Kind::Float, Kind::Int) => Kind::Float,
            (Kind::List(a), Kind::List(b)) => Kind::List(Box::new(a.merge(*b))),
            (Kind::Struct(mut a), Kind::Struct(b)) => {
                merge_fields(&mut a, b);
                Kind::Struct(a)
            }
            (a, b) if a == b => a,
            _ => Kind::Json,
        }
    }

    fn data_type(&self) -> DataType {
        match self {
            Kind::Bool => DataType::Boolean,
            Kind::Int => DataType::Int64,
            Kind::Float => DataType::Float64,
            Kind::List(item) => {
                DataType::List(Arc::new(Field::new("item", item.data_type(), true)))
            }
            Kind::Struct(fields) if !fields.is_empty() => DataType::Struct(fields_of(fields)),
            // Parquet has no empty struct and no untyped column, so these are kept as text.
            Kind::Struct(_) | Kind::Unknown | Kind::Str | Kind::Json => DataType::Utf8,
        }
    }

    fn is_json_text(&self) -> bool {
        matches!(self, Kind::Json) || matches!(self, Kind::Struct(fields) if fields.is_empty())
    }
}

/// Adds `b`'s fields into `a`, keeping first-seen order.
pub(crate) fn merge_fields(a: &mut Vec<(String, Kind)>, b: Vec<(String, Kind)>) {
    for (name, kind) in b {
        match a.iter_mut().find(|(existing, _)| *existing == name) {
            Some(entry) => entry.1 = std::mem::take(&mut entry.1).merge(kind),
            None => a.push((name, kind)),
        }
    }
}

/// Fields holding JSON text because their values clash, to tell the user about.
pub(crate) fn json_text_fields(fields: &[(String, Kind)]) -> Vec<&str> {
    fields
        .iter()
        .filter(|(_, kind)| kind.is_json_text())
        .map(|(name, _)| name.as_str())
        .collect()
}

fn fields_of(fields: &[(String, Kind)]) -> Fields {
    fields
        .iter()
        .map(|(name, kind)| Field::new(name, kind.data_type(), true))
        .collect()
}

/// The schema for records whose top-level fields were inferred as `fields`.
pub(crate) fn schema_of(fields: &[(String, Kind)]) -> SchemaRef {
    Arc::new(Schema::new(fields_of(fields)))
}

static NULL: OrderedJson = OrderedJson::Null;

/// One batch from `records` (JSON objects) in `schema`, inferred from `fields`.
pub(crate) fn records_to_batch(
    schema: &SchemaRef,
    fields: &[(String, Kind)],
    records: &[OrderedJson],
) -> Result<RecordBatch, ArrowError> {
    let columns = fields
        .iter()
        .map(|(name, kind)| {
            let values: Vec<&OrderedJson> = records
                .iter()
                .map(|record| record.get(name).unwrap_or(&NULL))
                .collect();
            build(kind, &values)
        })
        .collect::<Result<Vec<_>, _>>()?;
    RecordBatch::try_new(schema.clone(), columns)
}

fn build(kind: &Kind, values: &[&OrderedJson]) -> Result<ArrayRef, ArrowError> {
    let present = |v: &OrderedJson| !matches!(v, OrderedJson::Null);
    Ok(match kind {
        Kind::Bool => Arc::new(
            values
                .iter()
                .map(|v| match v {
                    OrderedJson::Bool(b) => Some(*b),
                    _ => None,
                })
                .collect::<BooleanArray>(),
        ),
        Kind::Int => Arc::new(
            values
                .iter()
                .map(|v| match v {
                    OrderedJson::Number(n) => n.as_i64(),
                    _ => None,
                })
                .collect::<Int64Array>(),
        ),
        Kind::Float => Arc::new(
            values
                .iter()
                .map(|v| match v {
                    OrderedJson::Number(n) => n.as_f64(),
                    _ => None,
                })
                .collect::<Float64Array>(),
        ),
        Kind::List(item) => {
            let lengths = values.iter().map(|v| match v {
                OrderedJson::Array(items) => items.len(),
                _ => 0,
            });
            let offsets = OffsetBuffer::<i32>::from_lengths(lengths);
            let children: Vec<&OrderedJson> = values
                .iter()
                .flat_map(|v| match v {
                    OrderedJson::Array(items) => items.iter().collect(),
                    _ => Vec::new(),
                })
                .collect();
            let field = Arc::new(Field::new("item", item.data_type(), true));
            let nulls = NullBuffer::from(values.iter().map(|v| present(v)).collect::<Vec<_>>());
            Arc::new(ListArray::try_new(
                field,
                offsets,
                build(item, &children)?,
                Some(nulls),
            )?)
        }
        Kind::Struct(fields) if !fields.is_empty() => {
            let children = fields
                .iter()
                .map(|(name, kind)| {
                    let column: Vec<&OrderedJson> = values
                        .iter()
                        .map(|v| v.get(name).unwrap_or(&NULL))
                        .collect();
                    build(kind, &column)
                })
                .collect::<Result<Vec<_>, _>>()?;
            let nulls = NullBuffer::from(values.iter().map(|v| present(v)).collect::<Vec<_>>());
            Arc::new(StructArray::try_new(
                fields_of(fields),
                children,
                Some(nulls),
            )?)
        }
        Kind::Str => Arc::new(
            values
                .iter()
                .map(|v| match v {
                    OrderedJson::Null => None,
                    OrderedJson::String(s) => Some(s.clone()),
                    other => serde_json::to_string(other).ok(),
                })
                .collect::<StringArray>(),
        ),
        Kind::Struct(_) | Kind::Unknown | Kind::Json => Arc::new(
            values
                .iter()
                .map(|v| match v {
                    OrderedJson::Null => None,
                    other => serde_json::to_string(other).ok(),
                })
                .collect::<StringArray>(),
        ),
    })
}
