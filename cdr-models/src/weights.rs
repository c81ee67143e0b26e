//! Checkpoint-format-independent weight access.
//!
//! A [`WeightSource`] yields named tensors as raw little-endian bytes; [`Weights`] turns them into
//! burn tensors of the compute dtype, checking each shape against what the model expects. Model code
//! asks for tensors by their checkpoint names (`model.layers.0.self_attn.q_proj.weight`), so there is
//! no remapping table between the checkpoint and the modules.

use std::path::{Path, PathBuf};

use burn::tensor::{DType, Tensor, TensorData, backend::Backend};
use half::{bf16, f16};

use crate::error::{ModelError, Result};

/// Element types a checkpoint may store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoredDtype {
    F32,
    F16,
    BF16,
}

impl StoredDtype {
    pub fn size(self) -> usize {
        match self {
            Self::F32 => 4,
            Self::F16 | Self::BF16 => 2,
        }
    }
}

/// The float type the model computes in. Log-probabilities are always f32.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ComputeDtype {
    #[default]
    F32,
    F16,
    BF16,
}

impl ComputeDtype {
    pub fn burn(self) -> DType {
        match self {
            Self::F32 => DType::F32,
            Self::F16 => DType::F16,
            Self::BF16 => DType::BF16,
        }
    }

    pub fn size(self) -> usize {
        match self {
            Self::F32 => 4,
            Self::F16 | Self::BF16 => 2,
        }
    }
}

impl std::str::FromStr for ComputeDtype {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "f32" | "float32" | "fp32" => Ok(Self::F32),
            "f16" | "float16" | "fp16" | "half" => Ok(Self::F16),
            "bf16" | "bfloat16" => Ok(Self::BF16),
            other => Err(format!("unknown dtype `{other}` (f32, f16, bf16)")),
        }
    }
}

impl std::fmt::Display for ComputeDtype {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::F32 => "f32",
            Self::F16 => "f16",
            Self::BF16 => "bf16",
        })
    }
}

/// A tensor as stored: dtype, shape and little-endian bytes.
pub struct RawTensor<'a> {
    pub dtype: StoredDtype,
    pub shape: Vec<usize>,
    pub bytes: &'a [u8],
    /// Called with byte ranges of `bytes` that have been consumed, so a memory-mapped source can
    /// drop those pages while a large tensor is still being converted.
    pub consumed: Option<&'a dyn Fn(std::ops::Range<usize>)>,
}

impl std::fmt::Debug for RawTensor<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawTensor")
            .field("dtype", &self.dtype)
            .field("shape", &self.shape)
            .field("bytes", &self.bytes.len())
            .finish()
    }
}

/// Bytes converted between two `consumed` calls.
const CONVERT_CHUNK: usize = 1 << 20;

/// Where weights come from (safetensors today; other formats implement the same trait).
pub trait WeightSource {
    /// The file or directory named in error messages.
    fn location(&self) -> &Path;

    /// The file holding tensor `name`, for error messages.
    fn file_of(&self, name: &str) -> PathBuf {
        let _ = name;
        self.location().to_path_buf()
    }

    /// Whether the source holds tensor `name`.
    fn contains(&self, name: &str) -> bool;

    /// Calls `f` with the stored tensor; `Ok(None)` if there is no such tensor.
    fn with_tensor(
        &self,
        name: &str,
        f: &mut dyn FnMut(RawTensor<'_>) -> Result<TensorData>,
    ) -> Result<Option<TensorData>>;
}

/// Converts stored bytes to the compute dtype in one pass (no intermediate f32 copy when the target
/// is half precision), reporting consumed chunks as it goes.
pub fn convert(raw: &RawTensor<'_>, target: ComputeDtype) -> TensorData {
    fn run<T, const N: usize>(raw: &RawTensor<'_>, f: impl Fn([u8; N]) -> T) -> Vec<T> {
        let mut out = Vec::with_capacity(raw.bytes.len() / N);
        let chunk = CONVERT_CHUNK / N * N;
        for (i, block) in raw.bytes.chunks(chunk).enumerate() {
            out.extend(
                block
                    .chunks_exact(N)
                    .map(|c| f(c.try_into().unwrap_or([0; N]))),
            );
            if let Some(consumed) = raw.consumed {
                consumed(i * chunk..i * chunk + block.len());
            }
        }
        out
    }
    let shape = raw.shape.clone();
    use ComputeDtype as C;
    use StoredDtype as S;
    match (raw.dtype, target) {
        (S::F32, C::F32) => TensorData::new(run(raw, f32::from_le_bytes), shape),
        (S::F16, C::F32) => TensorData::new(run(raw, |b| f16::from_le_bytes(b).to_f32()), shape),
        (S::BF16, C::F32) => TensorData::new(run(raw, |b| bf16::from_le_bytes(b).to_f32()), shape),
        (S::F32, C::BF16) => {
            TensorData::new(run(raw, |b| bf16::from_f32(f32::from_le_bytes(b))), shape)
        }
        (S::F16, C::BF16) => TensorData::new(
            run(raw, |b| bf16::from_f32(f16::from_le_bytes(b).to_f32())),
            shape,
        ),
        (S::BF16, C::BF16) => TensorData::new(run(raw, bf16::from_le_bytes), shape),
        (S::F32, C::F16) => {
            TensorData::new(run(raw, |b| f16::from_f32(f32::from_le_bytes(b))), shape)
        }
        (S::F16, C::F16) => TensorData::new(run(raw, f16::from_le_bytes), shape),
        (S::BF16, C::F16) => TensorData::new(
            run(raw, |b| f16::from_f32(bf16::from_le_bytes(b).to_f32())),
            shape,
        ),
    }
}

/// Typed access to a [`WeightSource`] for one device and compute dtype, with a name prefix
/// (`model.layers.3.`), in the manner of candle's `VarBuilder`.
pub struct Weights<'a, B: Backend> {
    source: &'a dyn WeightSource,
    device: &'a B::Device,
    dtype: ComputeDtype,
    prefix: String,
}

impl<'a, B: Backend> Weights<'a, B> {
    pub fn new(source: &'a dyn WeightSource, device: &'a B::Device, dtype: ComputeDtype) -> Self {
        Self {
            source,
            device,
            dtype,
            prefix: String::new(),
        }
    }

    /// Weights under `prefix.`.
    pub fn pp(&self, prefix: impl std::fmt::Display) -> Self {
        Self {
            source: self.source,
            device: self.device,
            dtype: self.dtype,
            prefix: format!("{}{prefix}.", self.prefix),
        }
    }

    pub fn device(&self) -> &'a B::Device {
        self.device
    }

    pub fn dtype(&self) -> ComputeDtype {
        self.dtype
    }

    fn full_name(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    /// Whether the checkpoint has tensor `name` (under the prefix).
    pub fn contains(&self, name: &str) -> bool {
        self.source.contains(&self.full_name(name))
    }

    /// Loads tensor `name` with exactly the shape `expected`, converted to the compute dtype.
    pub fn get<const D: usize>(&self, name: &str, expected: [usize; D]) -> Result<Tensor<B, D>> {
        let full = self.full_name(name);
        let file = self.source.file_of(&full);
        let dtype = self.dtype;
        let data = self
            .source
            .with_tensor(&full, &mut |raw| {
                if raw.shape != expected {
                    return Err(ModelError::ShapeMismatch {
                        name: full.clone(),
                        path: file.clone(),
                        expected: expected.to_vec(),
                        actual: raw.shape.clone(),
                    });
                }
                Ok(convert(&raw, dtype))
            })?
            .ok_or_else(|| ModelError::MissingTensor {
                name: full.clone(),
                path: file.clone(),
            })?;
        let tensor = Tensor::from_data(data, (self.device, dtype.burn()));
        Ok(tensor)
    }

    /// Loads matrix `name` (`[n, k]`, the checkpoint's `[out, in]`) straight into the CPU's packed
    /// bf16 layout, with no intermediate tensor (which would double a large matrix's memory while
    /// it is packed), releasing the source's pages as it goes.
    #[cfg(feature = "cpu")]
    pub fn get_packed(
        &self,
        name: &str,
        [n, k]: [usize; 2],
    ) -> Result<crate::kernels::bf16::PackedBf16> {
        use crate::kernels::bf16::PackedBf16;
        let full = self.full_name(name);
        let file = self.source.file_of(&full);
        let mut packed = None;
        self.source
            .with_tensor(&full, &mut |raw| {
                if raw.shape != [n, k] {
                    return Err(ModelError::ShapeMismatch {
                        name: full.clone(),
                        path: file.clone(),
                        expected: vec![n, k],
                        actual: raw.shape.clone(),
                    });
                }
                let size = raw.dtype.size();
                let bytes = raw.bytes;
                let row = |r: usize, out: &mut [u16]| {
                    let src = &bytes[r * k * size..(r + 1) * k * size];
                    for (o, c) in out.iter_mut().zip(src.chunks_exact(size)) {
                        *o = match raw.dtype {
                            StoredDtype::BF16 => u16::from_le_bytes([c[0], c[1]]),
                            StoredDtype::F16 => {
                                bf16::from_f32(f16::from_le_bytes([c[0], c[1]]).to_f32()).to_bits()
                            }
                            StoredDtype::F32 => {
                                bf16::from_f32(f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                                    .to_bits()
                            }
                        };
                    }
                };
                let done = |rows: std::ops::Range<usize>| {
                    if let Some(consumed) = raw.consumed {
                        consumed(rows.start * k * size..rows.end * k * size);
                    }
                };
                packed = Some(PackedBf16::pack_rows(n, k, row, done));
                // The closure's result type; the packed matrix travels in `packed`.
                Ok(TensorData::new(Vec::<f32>::new(), [0]))
            })?
            .ok_or_else(|| ModelError::MissingTensor {
                name: full.clone(),
                path: file.clone(),
            })?;
        packed.ok_or(ModelError::MissingTensor {
            name: full,
            path: file,
        })
    }
}
