//! Shared helpers for the GGUF tests: fixture paths and a small GGUF writer.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use cdr_models::gguf::{GgmlType, GgufFile, MetadataArray, MetadataValue};

pub fn gguf_fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("fixtures")
        .join("gguf")
        .join(name)
}

/// The real-weights asset fetched by `tools/fetch_assets.sh smollm2`. Tests that use it are
/// ignored where it is absent (see build.rs), so a missing file here is a failure.
pub fn smollm2_asset() -> PathBuf {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(".cache")
        .join("assets")
        .join("SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(
        path.is_file(),
        "{} is missing: run tools/fetch_assets.sh smollm2",
        path.display()
    );
    path
}

pub fn hex(s: &str) -> Vec<u8> {
    assert!(s.len().is_multiple_of(2), "odd hex length");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex digit"))
        .collect()
}

pub fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}

pub fn put_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_le_bytes());
}

pub fn put_str(out: &mut Vec<u8>, s: &[u8]) {
    put_u64(out, s.len() as u64);
    out.extend_from_slice(s);
}

fn value_type(v: &MetadataValue) -> u32 {
    match v {
        MetadataValue::U8(_) => 0,
        MetadataValue::I8(_) => 1,
        MetadataValue::U16(_) => 2,
        MetadataValue::I16(_) => 3,
        MetadataValue::U32(_) => 4,
        MetadataValue::I32(_) => 5,
        MetadataValue::F32(_) => 6,
        MetadataValue::Bool(_) => 7,
        MetadataValue::String(_) => 8,
        MetadataValue::Array(_) => 9,
        MetadataValue::U64(_) => 10,
        MetadataValue::I64(_) => 11,
        MetadataValue::F64(_) => 12,
    }
}

fn array_type(a: &MetadataArray) -> u32 {
    match a {
        MetadataArray::U8(_) => 0,
        MetadataArray::I8(_) => 1,
        MetadataArray::U16(_) => 2,
        MetadataArray::I16(_) => 3,
        MetadataArray::U32(_) => 4,
        MetadataArray::I32(_) => 5,
        MetadataArray::F32(_) => 6,
        MetadataArray::Bool(_) => 7,
        MetadataArray::String(_) => 8,
        MetadataArray::Array(_) => 9,
        MetadataArray::U64(_) => 10,
        MetadataArray::I64(_) => 11,
        MetadataArray::F64(_) => 12,
    }
}

pub fn put_value(out: &mut Vec<u8>, v: &MetadataValue) {
    match v {
        MetadataValue::U8(x) => out.push(*x),
        MetadataValue::I8(x) => out.extend_from_slice(&x.to_le_bytes()),
        MetadataValue::U16(x) => out.extend_from_slice(&x.to_le_bytes()),
        MetadataValue::I16(x) => out.extend_from_slice(&x.to_le_bytes()),
        MetadataValue::U32(x) => out.extend_from_slice(&x.to_le_bytes()),
        MetadataValue::I32(x) => out.extend_from_slice(&x.to_le_bytes()),
        MetadataValue::U64(x) => out.extend_from_slice(&x.to_le_bytes()),
        MetadataValue::I64(x) => out.extend_from_slice(&x.to_le_bytes()),
        MetadataValue::F32(x) => out.extend_from_slice(&x.to_le_bytes()),
        MetadataValue::F64(x) => out.extend_from_slice(&x.to_le_bytes()),
        MetadataValue::Bool(x) => out.push(u8::from(*x)),
        MetadataValue::String(s) => put_str(out, s.as_bytes()),
        MetadataValue::Array(a) => put_array(out, a),
    }
}

pub fn put_array(out: &mut Vec<u8>, a: &MetadataArray) {
    put_u32(out, array_type(a));
    put_u64(out, a.len() as u64);
    match a {
        MetadataArray::U8(v) => out.extend_from_slice(v),
        MetadataArray::I8(v) => v
            .iter()
            .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
        MetadataArray::U16(v) => v
            .iter()
            .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
        MetadataArray::I16(v) => v
            .iter()
            .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
        MetadataArray::U32(v) => v
            .iter()
            .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
        MetadataArray::I32(v) => v
            .iter()
            .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
        MetadataArray::U64(v) => v
            .iter()
            .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
        MetadataArray::I64(v) => v
            .iter()
            .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
        MetadataArray::F32(v) => v
            .iter()
            .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
        MetadataArray::F64(v) => v
            .iter()
            .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
        MetadataArray::Bool(v) => v.iter().for_each(|x| out.push(u8::from(*x))),
        MetadataArray::String(v) => v.iter().for_each(|s| put_str(out, s.as_bytes())),
        MetadataArray::Array(v) => v.iter().for_each(|a| put_array(out, a)),
    }
}

/// One tensor to write: name, GGUF dims (`ne`, fastest first), ggml type id, raw data.
#[derive(Debug, Clone)]
pub struct RawTensorEntry {
    pub name: String,
    pub dims: Vec<u64>,
    pub type_id: u32,
    pub data: Vec<u8>,
}

/// A GGUF writer for tests. Tensors are laid out in order at aligned offsets, and the last one ends
/// exactly at the end of the file (so any truncation cuts real data).
#[derive(Debug, Clone, Default)]
pub struct Builder {
    pub version: u32,
    pub metadata: Vec<(String, MetadataValue)>,
    pub tensors: Vec<RawTensorEntry>,
}

impl Builder {
    pub fn new() -> Self {
        Self {
            version: 3,
            ..Self::default()
        }
    }

    pub fn kv(mut self, key: &str, value: MetadataValue) -> Self {
        self.metadata.push((key.to_string(), value));
        self
    }

    pub fn tensor(mut self, name: &str, dims: &[u64], ty: GgmlType, data: Vec<u8>) -> Self {
        self.tensors.push(RawTensorEntry {
            name: name.to_string(),
            dims: dims.to_vec(),
            type_id: ty.id(),
            data,
        });
        self
    }

    /// An F32 tensor with the given GGUF dims and values.
    pub fn f32_tensor(self, name: &str, dims: &[u64], values: &[f32]) -> Self {
        let data = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.tensor(name, dims, GgmlType::F32, data)
    }

    pub fn alignment(&self) -> u64 {
        self.metadata
            .iter()
            .find(|(k, _)| k == "general.alignment")
            .and_then(|(_, v)| v.as_integer())
            // Invalid values (written on purpose by some tests) lay the data out at 32.
            .filter(|&a| a > 0 && a <= i128::from(u32::MAX) && (a as u64).is_power_of_two())
            .map(|a| a as u64)
            .unwrap_or(32)
    }

    pub fn build(&self) -> Vec<u8> {
        let align = self.alignment() as usize;
        let mut out = b"GGUF".to_vec();
        put_u32(&mut out, self.version);
        put_u64(&mut out, self.tensors.len() as u64);
        put_u64(&mut out, self.metadata.len() as u64);
        for (k, v) in &self.metadata {
            put_str(&mut out, k.as_bytes());
            put_u32(&mut out, value_type(v));
            put_value(&mut out, v);
        }
        let mut offset = 0usize;
        let mut offsets = Vec::new();
        for t in &self.tensors {
            offsets.push(offset);
            offset = (offset + t.data.len()).next_multiple_of(align);
        }
        for (t, &off) in self.tensors.iter().zip(&offsets) {
            put_str(&mut out, t.name.as_bytes());
            put_u32(&mut out, t.dims.len() as u32);
            for &d in &t.dims {
                put_u64(&mut out, d);
            }
            put_u32(&mut out, t.type_id);
            put_u64(&mut out, off as u64);
        }
        out.resize(out.len().next_multiple_of(align), 0);
        let data_start = out.len();
        for (t, &off) in self.tensors.iter().zip(&offsets) {
            out.resize(data_start + off, 0);
            out.extend_from_slice(&t.data);
        }
        out
    }

    pub fn write(&self, path: &Path) {
        std::fs::write(path, self.build()).unwrap();
    }

    /// The metadata and tensors of an opened file, for rewriting with edits.
    pub fn from_file(file: &GgufFile) -> Self {
        Self {
            version: file.version(),
            metadata: file
                .metadata()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
            tensors: file
                .tensors()
                .iter()
                .map(|t| RawTensorEntry {
                    name: t.name().to_string(),
                    dims: t.dims().to_vec(),
                    type_id: t.ggml_type().id(),
                    data: file.tensor_data(t).unwrap().to_vec(),
                })
                .collect(),
        }
    }
}

/// A deterministic xorshift64 generator.
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next_u64() as u8).collect()
    }
}
