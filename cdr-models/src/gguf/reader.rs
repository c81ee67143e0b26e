//! The GGUF container: header, metadata, tensor directory and data section, over a memory map.
//!
//! Layout (little-endian, versions 2 and 3):
//!
//! ```text
//! "GGUF" | version u32 | tensor_count u64 | kv_count u64
//! kv_count x (key: string, value_type u32, value)
//! tensor_count x (name: string, n_dims u32, ne[n_dims] u64, ggml_type u32, offset u64)
//! padding to `general.alignment` (default 32)
//! data section: each tensor at data_offset + offset
//! ```
//!
//! where a string is a u64 byte length followed by UTF-8 bytes, and an array value is an element
//! type u32, a u64 count and the elements (arrays may nest).
//!
//! The file is untrusted input: every count and length read from it is checked against the bytes
//! actually left before anything is allocated, arithmetic on sizes is checked, and every tensor's
//! data range is verified to lie inside the file when the file is opened. A corrupt, truncated or
//! hostile file gives [`ModelError::Checkpoint`], never a panic or an oversized allocation.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use memmap2::{Mmap, UncheckedAdvice};

use crate::error::{ModelError, Result};

/// The four bytes every GGUF file starts with.
pub const GGUF_MAGIC: [u8; 4] = *b"GGUF";

/// Data alignment when `general.alignment` is absent (GGUF specification).
pub const DEFAULT_ALIGNMENT: u64 = 32;

/// ggml's `GGML_MAX_DIMS`: llama.cpp rejects tensors with more dimensions, and so do we.
pub const MAX_DIMS: usize = 4;

/// Nested metadata arrays deeper than this are rejected: real files nest at most once, and the
/// parser recurses per level, so a hostile file must not choose the recursion depth.
const MAX_ARRAY_DEPTH: usize = 8;

/// Page size assumed when releasing mapped pages (the smallest on the platforms cdr runs on).
const PAGE: usize = 4096;

/// A ggml tensor element type, as stored in a GGUF tensor directory.
///
/// Names follow ggml (`Q4_K`, not `Q4K`) so they read the same as in llama.cpp's tools.
#[allow(non_camel_case_types)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GgmlType {
    F32,
    F16,
    Q4_0,
    Q4_1,
    Q5_0,
    Q5_1,
    Q8_0,
    Q8_1,
    Q2_K,
    Q3_K,
    Q4_K,
    Q5_K,
    Q6_K,
    Q8_K,
    IQ2_XXS,
    IQ2_XS,
    IQ3_XXS,
    IQ1_S,
    IQ4_NL,
    IQ3_S,
    IQ2_S,
    IQ4_XS,
    I8,
    I16,
    I32,
    I64,
    F64,
    IQ1_M,
    BF16,
    TQ1_0,
    TQ2_0,
    MXFP4,
    /// A type id this reader does not know; such a tensor can be listed but not loaded.
    Unknown(u32),
}

impl GgmlType {
    /// The type for a ggml type id (`enum ggml_type`).
    pub fn from_id(id: u32) -> Self {
        match id {
            0 => Self::F32,
            1 => Self::F16,
            2 => Self::Q4_0,
            3 => Self::Q4_1,
            6 => Self::Q5_0,
            7 => Self::Q5_1,
            8 => Self::Q8_0,
            9 => Self::Q8_1,
            10 => Self::Q2_K,
            11 => Self::Q3_K,
            12 => Self::Q4_K,
            13 => Self::Q5_K,
            14 => Self::Q6_K,
            15 => Self::Q8_K,
            16 => Self::IQ2_XXS,
            17 => Self::IQ2_XS,
            18 => Self::IQ3_XXS,
            19 => Self::IQ1_S,
            20 => Self::IQ4_NL,
            21 => Self::IQ3_S,
            22 => Self::IQ2_S,
            23 => Self::IQ4_XS,
            24 => Self::I8,
            25 => Self::I16,
            26 => Self::I32,
            27 => Self::I64,
            28 => Self::F64,
            29 => Self::IQ1_M,
            30 => Self::BF16,
            34 => Self::TQ1_0,
            35 => Self::TQ2_0,
            39 => Self::MXFP4,
            other => Self::Unknown(other),
        }
    }

    /// The ggml type id.
    pub fn id(self) -> u32 {
        match self {
            Self::F32 => 0,
            Self::F16 => 1,
            Self::Q4_0 => 2,
            Self::Q4_1 => 3,
            Self::Q5_0 => 6,
            Self::Q5_1 => 7,
            Self::Q8_0 => 8,
            Self::Q8_1 => 9,
            Self::Q2_K => 10,
            Self::Q3_K => 11,
            Self::Q4_K => 12,
            Self::Q5_K => 13,
            Self::Q6_K => 14,
            Self::Q8_K => 15,
            Self::IQ2_XXS => 16,
            Self::IQ2_XS => 17,
            Self::IQ3_XXS => 18,
            Self::IQ1_S => 19,
            Self::IQ4_NL => 20,
            Self::IQ3_S => 21,
            Self::IQ2_S => 22,
            Self::IQ4_XS => 23,
            Self::I8 => 24,
            Self::I16 => 25,
            Self::I32 => 26,
            Self::I64 => 27,
            Self::F64 => 28,
            Self::IQ1_M => 29,
            Self::BF16 => 30,
            Self::TQ1_0 => 34,
            Self::TQ2_0 => 35,
            Self::MXFP4 => 39,
            Self::Unknown(id) => id,
        }
    }

    /// `(elements per block, bytes per block)` as in ggml's type traits; `None` for unknown types.
    ///
    /// Known for every type, not only the ones cdr dequantizes, so that the directory of any file
    /// can be bounds-checked when it is opened.
    pub fn block_layout(self) -> Option<(usize, usize)> {
        const QK_K: usize = 256;
        Some(match self {
            Self::F32 | Self::I32 => (1, 4),
            Self::F16 | Self::BF16 | Self::I16 => (1, 2),
            Self::I8 => (1, 1),
            Self::I64 | Self::F64 => (1, 8),
            Self::Q4_0 | Self::IQ4_NL => (32, 18),
            Self::Q4_1 => (32, 20),
            Self::Q5_0 => (32, 22),
            Self::Q5_1 => (32, 24),
            Self::Q8_0 => (32, 34),
            Self::Q8_1 => (32, 40),
            Self::MXFP4 => (32, 17),
            Self::Q2_K => (QK_K, 84),
            Self::Q3_K => (QK_K, 110),
            Self::Q4_K => (QK_K, 144),
            Self::Q5_K => (QK_K, 176),
            Self::Q6_K => (QK_K, 210),
            Self::Q8_K => (QK_K, 292),
            Self::IQ2_XXS => (QK_K, 66),
            Self::IQ2_XS => (QK_K, 74),
            Self::IQ3_XXS => (QK_K, 98),
            Self::IQ1_S => (QK_K, 50),
            Self::IQ3_S => (QK_K, 110),
            Self::IQ2_S => (QK_K, 82),
            Self::IQ4_XS => (QK_K, 136),
            Self::IQ1_M => (QK_K, 56),
            Self::TQ1_0 => (QK_K, 54),
            Self::TQ2_0 => (QK_K, 66),
            Self::Unknown(_) => return None,
        })
    }

    /// Bytes taken by `n_elements` values of this type; `None` for an unknown type, a count that is
    /// not a whole number of blocks, or an overflow.
    pub fn byte_len(self, n_elements: u64) -> Option<u64> {
        let (block, size) = self.block_layout()?;
        let (block, size) = (block as u64, size as u64);
        if !n_elements.is_multiple_of(block) {
            return None;
        }
        (n_elements / block).checked_mul(size)
    }
}

impl std::fmt::Display for GgmlType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Unknown(id) => write!(f, "ggml type {id}"),
            other => write!(f, "{other:?}"),
        }
    }
}

/// A metadata value.
///
/// String values that are not valid UTF-8 (which the GGUF specification forbids) are decoded
/// lossily, with U+FFFD for the invalid bytes, rather than rejecting the whole file.
#[derive(Debug, Clone, PartialEq)]
pub enum MetadataValue {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    U64(u64),
    I64(i64),
    F32(f32),
    F64(f64),
    Bool(bool),
    String(String),
    Array(MetadataArray),
}

/// A metadata array: elements share one type, and arrays may nest.
#[derive(Debug, Clone, PartialEq)]
pub enum MetadataArray {
    U8(Vec<u8>),
    I8(Vec<i8>),
    U16(Vec<u16>),
    I16(Vec<i16>),
    U32(Vec<u32>),
    I32(Vec<i32>),
    U64(Vec<u64>),
    I64(Vec<i64>),
    F32(Vec<f32>),
    F64(Vec<f64>),
    Bool(Vec<bool>),
    String(Vec<String>),
    Array(Vec<MetadataArray>),
}

impl MetadataValue {
    /// The GGUF name of the value's type (`u32`, `string`, `array<string>`, ...).
    pub fn type_name(&self) -> String {
        match self {
            Self::U8(_) => "u8".into(),
            Self::I8(_) => "i8".into(),
            Self::U16(_) => "u16".into(),
            Self::I16(_) => "i16".into(),
            Self::U32(_) => "u32".into(),
            Self::I32(_) => "i32".into(),
            Self::U64(_) => "u64".into(),
            Self::I64(_) => "i64".into(),
            Self::F32(_) => "f32".into(),
            Self::F64(_) => "f64".into(),
            Self::Bool(_) => "bool".into(),
            Self::String(_) => "string".into(),
            Self::Array(a) => format!("array<{}>", a.element_type_name()),
        }
    }

    /// The value of an integer of any width and signedness.
    pub fn as_integer(&self) -> Option<i128> {
        Some(match *self {
            Self::U8(v) => v.into(),
            Self::I8(v) => v.into(),
            Self::U16(v) => v.into(),
            Self::I16(v) => v.into(),
            Self::U32(v) => v.into(),
            Self::I32(v) => v.into(),
            Self::U64(v) => v.into(),
            Self::I64(v) => v.into(),
            _ => return None,
        })
    }

    /// The string, if this is a string value.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Self::String(s) => Some(s),
            _ => None,
        }
    }
}

impl MetadataArray {
    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            Self::U8(v) => v.len(),
            Self::I8(v) => v.len(),
            Self::U16(v) => v.len(),
            Self::I16(v) => v.len(),
            Self::U32(v) => v.len(),
            Self::I32(v) => v.len(),
            Self::U64(v) => v.len(),
            Self::I64(v) => v.len(),
            Self::F32(v) => v.len(),
            Self::F64(v) => v.len(),
            Self::Bool(v) => v.len(),
            Self::String(v) => v.len(),
            Self::Array(v) => v.len(),
        }
    }

    /// Whether the array has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The GGUF name of the element type.
    pub fn element_type_name(&self) -> &'static str {
        match self {
            Self::U8(_) => "u8",
            Self::I8(_) => "i8",
            Self::U16(_) => "u16",
            Self::I16(_) => "i16",
            Self::U32(_) => "u32",
            Self::I32(_) => "i32",
            Self::U64(_) => "u64",
            Self::I64(_) => "i64",
            Self::F32(_) => "f32",
            Self::F64(_) => "f64",
            Self::Bool(_) => "bool",
            Self::String(_) => "string",
            Self::Array(_) => "array",
        }
    }

    /// The elements as `i128` if the array holds integers of any type.
    pub fn integers(&self) -> Option<Vec<i128>> {
        fn all<T: Copy + Into<i128>>(v: &[T]) -> Vec<i128> {
            v.iter().map(|&x| x.into()).collect()
        }
        Some(match self {
            Self::U8(v) => all(v),
            Self::I8(v) => all(v),
            Self::U16(v) => all(v),
            Self::I16(v) => all(v),
            Self::U32(v) => all(v),
            Self::I32(v) => all(v),
            Self::U64(v) => all(v),
            Self::I64(v) => all(v),
            _ => return None,
        })
    }
}

/// One entry of the tensor directory, validated against the file when it was opened.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorInfo {
    name: String,
    dims: Vec<u64>,
    ggml_type: GgmlType,
    offset: u64,
    n_elements: u64,
    n_bytes: Option<u64>,
}

impl TensorInfo {
    /// The tensor's name (`blk.0.attn_q.weight`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Dimensions in GGUF order: `dims()[0]` (ggml's `ne[0]`) varies fastest.
    pub fn dims(&self) -> &[u64] {
        &self.dims
    }

    /// The row-major (PyTorch) shape: the GGUF dimensions reversed, so a `[out, in]` linear weight
    /// stored with `ne = [in, out]` comes back as `[out, in]`.
    pub fn shape(&self) -> Vec<usize> {
        // Each dimension is at most the element count, which was checked to fit in usize.
        self.dims
            .iter()
            .rev()
            .map(|&d| usize::try_from(d).unwrap_or(usize::MAX))
            .collect()
    }

    /// The element type.
    pub fn ggml_type(&self) -> GgmlType {
        self.ggml_type
    }

    /// Offset of the data from the start of the data section.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Number of elements (the product of the dimensions).
    pub fn n_elements(&self) -> u64 {
        self.n_elements
    }

    /// Size of the data in bytes; `None` for a type this reader does not know.
    pub fn n_bytes(&self) -> Option<u64> {
        self.n_bytes
    }
}

/// An opened GGUF file: parsed metadata and tensor directory over a read-only memory map.
pub struct GgufFile {
    path: PathBuf,
    mmap: Mmap,
    version: u32,
    metadata: Vec<(String, MetadataValue)>,
    metadata_index: HashMap<String, usize>,
    tensors: Vec<TensorInfo>,
    tensor_index: HashMap<String, usize>,
    alignment: u64,
    data_offset: usize,
}

impl std::fmt::Debug for GgufFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GgufFile")
            .field("path", &self.path)
            .field("version", &self.version)
            .field("metadata", &self.metadata.len())
            .field("tensors", &self.tensors.len())
            .field("alignment", &self.alignment)
            .field("data_offset", &self.data_offset)
            .finish()
    }
}

impl GgufFile {
    /// Maps and parses `path`, checking every tensor's data range against the file size.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let file = File::open(path).map_err(|e| ModelError::io(path, e))?;
        let len = file.metadata().map_err(|e| ModelError::io(path, e))?.len();
        if len == 0 {
            // Mapping an empty file is platform-dependent; it is not a GGUF file either way.
            return Err(ModelError::Checkpoint {
                path: path.to_path_buf(),
                message: "empty file, not a GGUF file".into(),
            });
        }
        // SAFETY: the mapping is read-only; a file modified while it is being loaded is outside
        // what any loader (llama.cpp's included) can defend against.
        let mmap = unsafe { Mmap::map(&file) }.map_err(|e| ModelError::io(path, e))?;
        let parsed = parse(&mmap).map_err(|message| ModelError::Checkpoint {
            path: path.to_path_buf(),
            message,
        })?;
        let metadata_index = parsed
            .metadata
            .iter()
            .enumerate()
            .map(|(i, (k, _))| (k.clone(), i))
            .collect();
        let tensor_index = parsed
            .tensors
            .iter()
            .enumerate()
            .map(|(i, t)| (t.name.clone(), i))
            .collect();
        Ok(Self {
            path: path.to_path_buf(),
            mmap,
            version: parsed.version,
            metadata: parsed.metadata,
            metadata_index,
            tensors: parsed.tensors,
            tensor_index,
            alignment: parsed.alignment,
            data_offset: parsed.data_offset,
        })
    }

    /// The file this was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The GGUF format version (2 or 3).
    pub fn version(&self) -> u32 {
        self.version
    }

    /// Data alignment (`general.alignment`, default 32).
    pub fn alignment(&self) -> u64 {
        self.alignment
    }

    /// Byte offset of the data section in the file.
    pub fn data_offset(&self) -> usize {
        self.data_offset
    }

    /// Size of the file in bytes.
    pub fn file_len(&self) -> usize {
        self.mmap.len()
    }

    /// All metadata entries in file order.
    pub fn metadata(&self) -> impl Iterator<Item = (&str, &MetadataValue)> {
        self.metadata.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// The metadata value under `key`.
    pub fn get(&self, key: &str) -> Option<&MetadataValue> {
        self.metadata_index.get(key).map(|&i| &self.metadata[i].1)
    }

    /// `general.architecture` (`llama`, `qwen2`, ...), which every GGUF model must have.
    pub fn architecture(&self) -> Result<&str> {
        self.get_str("general.architecture")?
            .ok_or_else(|| self.error("metadata has no `general.architecture`".into()))
    }

    fn error(&self, message: String) -> ModelError {
        ModelError::Checkpoint {
            path: self.path.clone(),
            message,
        }
    }

    fn wrong_type(&self, key: &str, value: &MetadataValue, expected: &str) -> ModelError {
        self.error(format!(
            "metadata `{key}` is a {}, expected {expected}",
            value.type_name()
        ))
    }

    /// A string value; `Ok(None)` if `key` is absent, an error if it holds another type.
    pub fn get_str(&self, key: &str) -> Result<Option<&str>> {
        match self.get(key) {
            None => Ok(None),
            Some(MetadataValue::String(s)) => Ok(Some(s)),
            Some(other) => Err(self.wrong_type(key, other, "a string")),
        }
    }

    /// A boolean value; `Ok(None)` if `key` is absent.
    pub fn get_bool(&self, key: &str) -> Result<Option<bool>> {
        match self.get(key) {
            None => Ok(None),
            Some(MetadataValue::Bool(b)) => Ok(Some(*b)),
            Some(other) => Err(self.wrong_type(key, other, "a bool")),
        }
    }

    /// An integer of any stored width or signedness that fits in `u64`; `Ok(None)` if absent.
    pub fn get_u64(&self, key: &str) -> Result<Option<u64>> {
        let Some(value) = self.get(key) else {
            return Ok(None);
        };
        let int = value
            .as_integer()
            .ok_or_else(|| self.wrong_type(key, value, "an integer"))?;
        u64::try_from(int)
            .map(Some)
            .map_err(|_| self.error(format!("metadata `{key}` = {int} is out of range")))
    }

    /// An integer of any stored width or signedness that fits in `u32` (writers differ on whether
    /// token ids and sizes are u32, i32 or u64); `Ok(None)` if absent.
    pub fn get_u32(&self, key: &str) -> Result<Option<u32>> {
        match self.get_u64(key)? {
            None => Ok(None),
            Some(v) => u32::try_from(v)
                .map(Some)
                .map_err(|_| self.error(format!("metadata `{key}` = {v} does not fit in u32"))),
        }
    }

    /// A float (f32, or f64 narrowed to f32, or an integer); `Ok(None)` if absent.
    pub fn get_f32(&self, key: &str) -> Result<Option<f32>> {
        match self.get(key) {
            None => Ok(None),
            Some(MetadataValue::F32(v)) => Ok(Some(*v)),
            Some(MetadataValue::F64(v)) => Ok(Some(*v as f32)),
            Some(other) => match other.as_integer() {
                Some(int) => Ok(Some(int as f32)),
                None => Err(self.wrong_type(key, other, "a number")),
            },
        }
    }

    /// An array value of any element type; `Ok(None)` if absent.
    pub fn get_array(&self, key: &str) -> Result<Option<&MetadataArray>> {
        match self.get(key) {
            None => Ok(None),
            Some(MetadataValue::Array(a)) => Ok(Some(a)),
            Some(other) => Err(self.wrong_type(key, other, "an array")),
        }
    }

    /// An array of strings (`tokenizer.ggml.tokens`, `tokenizer.ggml.merges`); `Ok(None)` if absent.
    pub fn get_str_array(&self, key: &str) -> Result<Option<&[String]>> {
        match self.get_array(key)? {
            None => Ok(None),
            Some(MetadataArray::String(v)) => Ok(Some(v)),
            Some(other) => Err(self.error(format!(
                "metadata `{key}` is an array<{}>, expected an array<string>",
                other.element_type_name()
            ))),
        }
    }

    /// An array of integers of any type, each fitting in `i64`; `Ok(None)` if absent.
    pub fn get_i64_array(&self, key: &str) -> Result<Option<Vec<i64>>> {
        let Some(array) = self.get_array(key)? else {
            return Ok(None);
        };
        let ints = array.integers().ok_or_else(|| {
            self.error(format!(
                "metadata `{key}` is an array<{}>, expected an array of integers",
                array.element_type_name()
            ))
        })?;
        ints.into_iter()
            .map(|v| {
                i64::try_from(v)
                    .map_err(|_| self.error(format!("metadata `{key}`: {v} is out of range")))
            })
            .collect::<Result<Vec<_>>>()
            .map(Some)
    }

    /// An array of integers of any type, each fitting in `u32`; `Ok(None)` if absent.
    pub fn get_u32_array(&self, key: &str) -> Result<Option<Vec<u32>>> {
        let Some(ints) = self.get_i64_array(key)? else {
            return Ok(None);
        };
        ints.into_iter()
            .map(|v| {
                u32::try_from(v)
                    .map_err(|_| self.error(format!("metadata `{key}`: {v} does not fit in u32")))
            })
            .collect::<Result<Vec<_>>>()
            .map(Some)
    }

    /// An array of floats (f32, f64 narrowed, or integers); `Ok(None)` if absent.
    pub fn get_f32_array(&self, key: &str) -> Result<Option<Vec<f32>>> {
        let Some(array) = self.get_array(key)? else {
            return Ok(None);
        };
        match array {
            MetadataArray::F32(v) => Ok(Some(v.clone())),
            MetadataArray::F64(v) => Ok(Some(v.iter().map(|&x| x as f32).collect())),
            other => match other.integers() {
                Some(ints) => Ok(Some(ints.into_iter().map(|x| x as f32).collect())),
                None => Err(self.error(format!(
                    "metadata `{key}` is an array<{}>, expected an array of numbers",
                    other.element_type_name()
                ))),
            },
        }
    }

    /// The tensor directory in file order.
    pub fn tensors(&self) -> &[TensorInfo] {
        &self.tensors
    }

    /// The directory entry of tensor `name` (a GGUF name such as `blk.0.attn_q.weight`).
    pub fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.tensor_index.get(name).map(|&i| &self.tensors[i])
    }

    /// Byte range of `info`'s data within the file.
    pub fn tensor_range(&self, info: &TensorInfo) -> Result<std::ops::Range<usize>> {
        let n_bytes = info.n_bytes.ok_or_else(|| {
            self.error(format!(
                "tensor `{}` has unknown {}",
                info.name, info.ggml_type
            ))
        })?;
        let range = (|| {
            let start = u64::try_from(self.data_offset)
                .ok()?
                .checked_add(info.offset)?;
            let end = start.checked_add(n_bytes)?;
            Some(usize::try_from(start).ok()?..usize::try_from(end).ok()?)
        })();
        range
            .filter(|r| r.end <= self.mmap.len())
            .ok_or_else(|| self.error(format!("tensor `{}` lies outside the file", info.name)))
    }

    /// The stored bytes of `info`'s data (little-endian, in the tensor's ggml type).
    pub fn tensor_data(&self, info: &TensorInfo) -> Result<&[u8]> {
        let range = self.tensor_range(info)?;
        self.mmap
            .get(range)
            .ok_or_else(|| self.error(format!("tensor `{}` lies outside the file", info.name)))
    }

    /// Dequantizes tensor `name` (a GGUF name) to f32 in GGUF element order; `Ok(None)` if there is
    /// no such tensor.
    ///
    /// This is the raw stored tensor: no name mapping and no Q/K un-permutation (see
    /// [`super::GgufWeights`] for HF-layout weights).
    pub fn dequantize(&self, name: &str) -> Result<Option<Vec<f32>>> {
        let Some(info) = self.tensor(name) else {
            return Ok(None);
        };
        let bytes = self.tensor_data(info)?;
        let n = usize::try_from(info.n_elements)
            .map_err(|_| self.error(format!("tensor `{name}` is too large")))?;
        let mut out = vec![0.0f32; n];
        super::dequant::dequantize(info.ggml_type, bytes, &mut out)
            .map_err(|e| super::weights::dequant_error(self, name, e))?;
        Ok(Some(out))
    }

    /// Drops the mapped pages of file bytes `range` (widened to whole pages): the pages are
    /// re-read from the file if touched again, so this only lowers resident memory.
    pub(crate) fn release_bytes(&self, range: std::ops::Range<usize>) {
        let start = range.start / PAGE * PAGE;
        let end = range.end.min(self.mmap.len());
        if end > start {
            // SAFETY: the mapping is read-only and file-backed; dropped pages read back the same
            // bytes from the file, so no borrow of the mapping observes a change.
            let _ = unsafe {
                self.mmap
                    .unchecked_advise_range(UncheckedAdvice::DontNeed, start, end - start)
            };
        }
    }
}

/// The result of [`parse`].
struct Parsed {
    version: u32,
    metadata: Vec<(String, MetadataValue)>,
    tensors: Vec<TensorInfo>,
    alignment: u64,
    data_offset: usize,
}

/// A bounds-checked little-endian reader; errors are messages that name the byte offset.
struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

type ParseResult<T> = std::result::Result<T, String>;

impl<'a> Cursor<'a> {
    fn remaining(&self) -> usize {
        self.bytes.len().saturating_sub(self.pos)
    }

    fn take(&mut self, n: usize) -> ParseResult<&'a [u8]> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.bytes.len());
        match end.and_then(|end| self.bytes.get(self.pos..end).map(|s| (s, end))) {
            Some((slice, end)) => {
                self.pos = end;
                Ok(slice)
            }
            None => Err(format!(
                "truncated: needs {n} bytes at offset {}, the file has {} left",
                self.pos,
                self.remaining()
            )),
        }
    }

    fn array<const N: usize>(&mut self) -> ParseResult<[u8; N]> {
        let bytes = self.take(N)?;
        bytes
            .try_into()
            .map_err(|_| format!("internal: short read at offset {}", self.pos))
    }

    fn u8(&mut self) -> ParseResult<u8> {
        Ok(self.array::<1>()?[0])
    }

    fn u32(&mut self) -> ParseResult<u32> {
        self.array().map(u32::from_le_bytes)
    }

    fn u64(&mut self) -> ParseResult<u64> {
        self.array().map(u64::from_le_bytes)
    }

    /// Reads a u64 count of items that take at least `min_size` bytes each, rejecting counts the
    /// rest of the file cannot possibly hold (so the count can size an allocation).
    fn count(&mut self, what: &str, min_size: usize) -> ParseResult<usize> {
        let at = self.pos;
        let n = self.u64()?;
        let max = self.remaining() / min_size.max(1);
        match usize::try_from(n) {
            Ok(n) if n <= max => Ok(n),
            _ => Err(format!(
                "{what} count {n} at offset {at} exceeds what the remaining {} bytes can hold",
                self.remaining()
            )),
        }
    }

    fn string_bytes(&mut self) -> ParseResult<&'a [u8]> {
        let at = self.pos;
        let n = self.u64()?;
        match usize::try_from(n) {
            Ok(n) if n <= self.remaining() => self.take(n),
            _ => Err(format!(
                "string length {n} at offset {at} exceeds the remaining {} bytes",
                self.remaining()
            )),
        }
    }

    /// A string that must be valid UTF-8 (keys and tensor names, which are looked up exactly).
    fn strict_string(&mut self, what: &str) -> ParseResult<String> {
        let at = self.pos;
        let bytes = self.string_bytes()?;
        std::str::from_utf8(bytes)
            .map(str::to_owned)
            .map_err(|_| format!("{what} at offset {at} is not valid UTF-8"))
    }

    /// A string value, decoded lossily if it is not valid UTF-8.
    fn value_string(&mut self) -> ParseResult<String> {
        let bytes = self.string_bytes()?;
        Ok(match std::str::from_utf8(bytes) {
            Ok(s) => s.to_owned(),
            Err(_) => String::from_utf8_lossy(bytes).into_owned(),
        })
    }

    fn bool(&mut self) -> ParseResult<bool> {
        let at = self.pos;
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            b => Err(format!("invalid bool {b} at offset {at}")),
        }
    }

    /// `count` fixed-size elements decoded by `f`.
    fn fixed<T, const N: usize>(
        &mut self,
        count: usize,
        f: impl Fn([u8; N]) -> T,
    ) -> ParseResult<Vec<T>> {
        let bytes = self.take(count.checked_mul(N).ok_or("array size overflows")?)?;
        Ok(bytes
            .chunks_exact(N)
            .map(|c| f(c.try_into().unwrap_or([0; N])))
            .collect())
    }
}

/// Value type ids of the GGUF specification.
mod value_type {
    pub const U8: u32 = 0;
    pub const I8: u32 = 1;
    pub const U16: u32 = 2;
    pub const I16: u32 = 3;
    pub const U32: u32 = 4;
    pub const I32: u32 = 5;
    pub const F32: u32 = 6;
    pub const BOOL: u32 = 7;
    pub const STRING: u32 = 8;
    pub const ARRAY: u32 = 9;
    pub const U64: u32 = 10;
    pub const I64: u32 = 11;
    pub const F64: u32 = 12;
}

/// The fewest bytes one value of type `ty` takes in the file.
fn min_value_size(ty: u32) -> ParseResult<usize> {
    use value_type::*;
    Ok(match ty {
        U8 | I8 | BOOL => 1,
        U16 | I16 => 2,
        U32 | I32 | F32 => 4,
        U64 | I64 | F64 | STRING => 8,
        // element type u32 + count u64
        ARRAY => 12,
        other => return Err(format!("unknown metadata value type {other}")),
    })
}

fn read_value(c: &mut Cursor<'_>, ty: u32) -> ParseResult<MetadataValue> {
    use value_type::*;
    Ok(match ty {
        U8 => MetadataValue::U8(c.u8()?),
        I8 => MetadataValue::I8(i8::from_le_bytes(c.array()?)),
        U16 => MetadataValue::U16(u16::from_le_bytes(c.array()?)),
        I16 => MetadataValue::I16(i16::from_le_bytes(c.array()?)),
        U32 => MetadataValue::U32(c.u32()?),
        I32 => MetadataValue::I32(i32::from_le_bytes(c.array()?)),
        F32 => MetadataValue::F32(f32::from_le_bytes(c.array()?)),
        BOOL => MetadataValue::Bool(c.bool()?),
        STRING => MetadataValue::String(c.value_string()?),
        ARRAY => MetadataValue::Array(read_array(c, 1)?),
        U64 => MetadataValue::U64(c.u64()?),
        I64 => MetadataValue::I64(i64::from_le_bytes(c.array()?)),
        F64 => MetadataValue::F64(f64::from_le_bytes(c.array()?)),
        other => return Err(format!("unknown metadata value type {other}")),
    })
}

fn read_array(c: &mut Cursor<'_>, depth: usize) -> ParseResult<MetadataArray> {
    use value_type::*;
    if depth > MAX_ARRAY_DEPTH {
        return Err(format!(
            "metadata arrays nested deeper than {MAX_ARRAY_DEPTH} levels"
        ));
    }
    let ty = c.u32()?;
    let n = c.count("array element", min_value_size(ty)?)?;
    Ok(match ty {
        U8 => MetadataArray::U8(c.take(n)?.to_vec()),
        I8 => MetadataArray::I8(c.fixed(n, i8::from_le_bytes)?),
        U16 => MetadataArray::U16(c.fixed(n, u16::from_le_bytes)?),
        I16 => MetadataArray::I16(c.fixed(n, i16::from_le_bytes)?),
        U32 => MetadataArray::U32(c.fixed(n, u32::from_le_bytes)?),
        I32 => MetadataArray::I32(c.fixed(n, i32::from_le_bytes)?),
        F32 => MetadataArray::F32(c.fixed(n, f32::from_le_bytes)?),
        U64 => MetadataArray::U64(c.fixed(n, u64::from_le_bytes)?),
        I64 => MetadataArray::I64(c.fixed(n, i64::from_le_bytes)?),
        F64 => MetadataArray::F64(c.fixed(n, f64::from_le_bytes)?),
        BOOL => {
            let mut v = Vec::with_capacity(n);
            for _ in 0..n {
                v.push(c.bool()?);
            }
            MetadataArray::Bool(v)
        }
        STRING => {
            let mut v = Vec::with_capacity(n);
            for _ in 0..n {
                v.push(c.value_string()?);
            }
            MetadataArray::String(v)
        }
        ARRAY => {
            let mut v = Vec::with_capacity(n);
            for _ in 0..n {
                v.push(read_array(c, depth + 1)?);
            }
            MetadataArray::Array(v)
        }
        other => return Err(format!("unknown metadata value type {other}")),
    })
}

fn parse(bytes: &[u8]) -> ParseResult<Parsed> {
    let mut c = Cursor { bytes, pos: 0 };
    let magic: [u8; 4] = c
        .array()
        .map_err(|_| "too short to be a GGUF file".to_string())?;
    if magic != GGUF_MAGIC {
        return Err(format!(
            "not a GGUF file: starts with {magic:02x?}, expected \"GGUF\""
        ));
    }
    let version = c.u32()?;
    match version {
        2 | 3 => {}
        1 => {
            return Err(
                "GGUF version 1 is not supported (re-convert with a current llama.cpp)".into(),
            );
        }
        v if matches!(v.swap_bytes(), 1..=3) => {
            return Err("big-endian GGUF files are not supported".into());
        }
        v => return Err(format!("unsupported GGUF version {v}")),
    }
    // Only upper bounds here; the exact per-item minimums are re-checked when the items are read.
    let tensor_count = c.u64()?;
    let kv_count = c.count("metadata", 8 + 4 + 1)?;

    let mut metadata: Vec<(String, MetadataValue)> = Vec::with_capacity(kv_count);
    let mut seen = HashMap::with_capacity(kv_count);
    for i in 0..kv_count {
        let key = c
            .strict_string("metadata key")
            .map_err(|e| format!("metadata entry {i}: {e}"))?;
        let ty = c.u32()?;
        let value = read_value(&mut c, ty).map_err(|e| format!("metadata `{key}`: {e}"))?;
        if seen.insert(key.clone(), i).is_some() {
            return Err(format!("metadata key `{key}` appears twice"));
        }
        metadata.push((key, value));
    }

    let alignment = match seen.get("general.alignment").map(|&i| &metadata[i].1) {
        None => DEFAULT_ALIGNMENT,
        Some(value) => match value.as_integer() {
            Some(a) if a > 0 && (a as u128).is_power_of_two() && a <= i128::from(u32::MAX) => {
                a as u64
            }
            _ => {
                return Err(format!(
                    "`general.alignment` must be a power of two, got {value:?}"
                ));
            }
        },
    };

    // name length u64 + n_dims u32 + type u32 + offset u64
    let min_tensor_info = 8 + 4 + 4 + 8;
    let max_tensors = (c.remaining() / min_tensor_info) as u64;
    if tensor_count > max_tensors {
        return Err(format!(
            "tensor count {tensor_count} exceeds what the remaining {} bytes can hold",
            c.remaining()
        ));
    }
    let mut raw = Vec::with_capacity(tensor_count as usize);
    let mut names = HashMap::with_capacity(tensor_count as usize);
    for i in 0..tensor_count {
        let name = c
            .strict_string("tensor name")
            .map_err(|e| format!("tensor {i}: {e}"))?;
        let n_dims = c.u32()?;
        if n_dims as usize > MAX_DIMS {
            return Err(format!(
                "tensor `{name}` has {n_dims} dimensions (at most {MAX_DIMS})"
            ));
        }
        let mut dims = Vec::with_capacity(n_dims as usize);
        for _ in 0..n_dims {
            dims.push(c.u64()?);
        }
        let ggml_type = GgmlType::from_id(c.u32()?);
        let offset = c.u64()?;
        if names.insert(name.clone(), i).is_some() {
            return Err(format!("tensor `{name}` appears twice"));
        }
        raw.push((name, dims, ggml_type, offset));
    }

    let data_offset = (c.pos as u64)
        .checked_next_multiple_of(alignment)
        .and_then(|o| usize::try_from(o).ok())
        .ok_or("data section offset overflows")?;

    let file_len = bytes.len() as u64;
    let mut tensors = Vec::with_capacity(raw.len());
    for (name, dims, ggml_type, offset) in raw {
        let n_elements = dims
            .iter()
            .try_fold(1u64, |acc, &d| acc.checked_mul(d))
            .filter(|&n| n <= i64::MAX as u64 && usize::try_from(n).is_ok())
            .ok_or_else(|| format!("tensor `{name}`: element count of {dims:?} overflows"))?;
        if offset % alignment != 0 {
            return Err(format!(
                "tensor `{name}`: data offset {offset} is not a multiple of the alignment {alignment}"
            ));
        }
        let n_bytes = match ggml_type.block_layout() {
            None => None,
            Some((block, _)) => {
                let row = dims.first().copied().unwrap_or(1);
                if row % block as u64 != 0 {
                    return Err(format!(
                        "tensor `{name}`: rows of {row} elements are not whole {ggml_type} blocks of {block}"
                    ));
                }
                let n_bytes = ggml_type
                    .byte_len(n_elements)
                    .ok_or_else(|| format!("tensor `{name}`: byte size overflows"))?;
                let end = (data_offset as u64)
                    .checked_add(offset)
                    .and_then(|s| s.checked_add(n_bytes));
                match end {
                    Some(end) if end <= file_len => {}
                    _ => {
                        return Err(format!(
                            "tensor `{name}` ({n_bytes} bytes at data offset {offset}) runs past the end of the {file_len}-byte file"
                        ));
                    }
                }
                Some(n_bytes)
            }
        };
        tensors.push(TensorInfo {
            name,
            dims,
            ggml_type,
            offset,
            n_elements,
            n_bytes,
        });
    }

    Ok(Parsed {
        version,
        metadata,
        tensors,
        alignment,
        data_offset,
    })
}
