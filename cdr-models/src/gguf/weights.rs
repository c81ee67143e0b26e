//! [`GgufWeights`]: a GGUF file served as a [`WeightSource`] under Hugging Face tensor names.
//!
//! The decoder asks for `model.layers.3.self_attn.q_proj.weight`; llama.cpp stores it as
//! `blk.3.attn_q.weight`, possibly quantized, and, for the `llama` architecture, with the rows of
//! every Q and K head reordered (see [`unpermute_row`]). This module maps the name, dequantizes to
//! f32 and restores the Hugging Face row order, one tensor at a time.

use std::ops::Range;
use std::path::{Path, PathBuf};

use burn::tensor::TensorData;
use memmap2::{MmapMut, UncheckedAdvice};

use super::dequant::{self, DequantError};
use super::reader::{GgmlType, GgufFile, TensorInfo};
use crate::error::{ModelError, Result};
use crate::weights::{RawTensor, StoredDtype, WeightSource};

/// Quantized input bytes dequantized between two releases of their mapped pages.
const CHUNK_BYTES: usize = 1 << 20;

/// Page size assumed when releasing pages.
const PAGE: usize = 4096;

/// The llama.cpp name of a Hugging Face Llama/Qwen2 tensor name, if it has one.
///
/// `model.embed_tokens.weight` → `token_embd.weight`, `model.norm.weight` → `output_norm.weight`,
/// `lm_head.weight` → `output.weight`, and per layer N (`model.layers.N.`):
/// `self_attn.{q,k,v,o}_proj` → `blk.N.attn_{q,k,v,output}`,
/// `mlp.{gate,up,down}_proj` → `blk.N.ffn_{gate,up,down}`,
/// `input_layernorm` → `blk.N.attn_norm`, `post_attention_layernorm` → `blk.N.ffn_norm`
/// (each with its `.weight` or `.bias` suffix).
pub fn hf_to_gguf_name(name: &str) -> Option<String> {
    match name {
        "model.embed_tokens.weight" => return Some("token_embd.weight".into()),
        "model.norm.weight" => return Some("output_norm.weight".into()),
        "lm_head.weight" => return Some("output.weight".into()),
        _ => {}
    }
    let rest = name.strip_prefix("model.layers.")?;
    let (layer, rest) = rest.split_once('.')?;
    // Only canonical decimal layer numbers, so that each GGUF name has exactly one HF name.
    if layer.is_empty()
        || !layer.bytes().all(|b| b.is_ascii_digit())
        || (layer.len() > 1 && layer.starts_with('0'))
    {
        return None;
    }
    let (module, suffix) = rest.rsplit_once('.')?;
    if suffix != "weight" && suffix != "bias" {
        return None;
    }
    let gguf = LAYER_NAMES
        .iter()
        .find(|(hf, _)| *hf == module)
        .map(|(_, gguf)| *gguf)?;
    Some(format!("blk.{layer}.{gguf}.{suffix}"))
}

/// The Hugging Face name of a llama.cpp tensor name (the inverse of [`hf_to_gguf_name`]).
pub fn gguf_to_hf_name(name: &str) -> Option<String> {
    match name {
        "token_embd.weight" => return Some("model.embed_tokens.weight".into()),
        "output_norm.weight" => return Some("model.norm.weight".into()),
        "output.weight" => return Some("lm_head.weight".into()),
        _ => {}
    }
    let rest = name.strip_prefix("blk.")?;
    let (layer, rest) = rest.split_once('.')?;
    let (module, suffix) = rest.rsplit_once('.')?;
    let hf = LAYER_NAMES
        .iter()
        .find(|(_, gguf)| *gguf == module)
        .map(|(hf, _)| *hf)?;
    let candidate = format!("model.layers.{layer}.{hf}.{suffix}");
    // Round-trip so that only names hf_to_gguf_name accepts come back.
    (hf_to_gguf_name(&candidate).as_deref() == Some(name)).then_some(candidate)
}

/// Per-layer modules: Hugging Face name, llama.cpp name.
const LAYER_NAMES: [(&str, &str); 9] = [
    ("self_attn.q_proj", "attn_q"),
    ("self_attn.k_proj", "attn_k"),
    ("self_attn.v_proj", "attn_v"),
    ("self_attn.o_proj", "attn_output"),
    ("mlp.gate_proj", "ffn_gate"),
    ("mlp.up_proj", "ffn_up"),
    ("mlp.down_proj", "ffn_down"),
    ("input_layernorm", "attn_norm"),
    ("post_attention_layernorm", "ffn_norm"),
];

/// The architectures whose tensors [`GgufWeights`] knows how to serve.
pub const SUPPORTED_ARCHITECTURES: [&str; 2] = ["llama", "qwen2"];

/// A GGUF checkpoint as a [`WeightSource`] with Hugging Face tensor names and layouts.
///
/// F32, F16 and BF16 tensors that need no reordering are handed to the caller straight from the
/// memory map; everything else is dequantized to f32 into a temporary buffer first. Pages of the
/// file and of that buffer are released as they are consumed, so loading holds little more than
/// the converted weights.
#[derive(Debug)]
pub struct GgufWeights {
    file: GgufFile,
    /// `(query heads, key/value heads)` when Q/K rows are stored in llama.cpp's rope order.
    permuted_heads: Option<(usize, usize)>,
}

impl GgufWeights {
    /// Opens `path` (see [`GgufWeights::new`]).
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        Self::new(GgufFile::open(path)?)
    }

    /// Serves the tensors of `file`, whose `general.architecture` must be `llama` or `qwen2`.
    ///
    /// For `llama`, llama.cpp's converter reorders the rows of `q_proj` and `k_proj` (weights and
    /// biases) within each head from the Hugging Face "halves" rotary layout to ggml's
    /// "interleaved pairs" layout; they are put back here, which needs
    /// `llama.attention.head_count` (and `head_count_kv`, default: the same). `qwen2` is converted
    /// without reordering (ggml runs it with the NeoX rotary, which is the halves layout).
    pub fn new(file: GgufFile) -> Result<Self> {
        let arch = file.architecture()?.to_owned();
        let permuted_heads = match arch.as_str() {
            "llama" => {
                let heads_key = format!("{arch}.attention.head_count");
                let heads = file
                    .get_u32(&heads_key)?
                    .ok_or_else(|| ModelError::Config {
                        path: file.path().to_path_buf(),
                        message: format!("GGUF metadata has no `{heads_key}`"),
                    })?;
                let kv = file
                    .get_u32(&format!("{arch}.attention.head_count_kv"))?
                    .unwrap_or(heads);
                if heads == 0 || kv == 0 {
                    return Err(ModelError::Config {
                        path: file.path().to_path_buf(),
                        message: "GGUF attention head counts must be positive".into(),
                    });
                }
                Some((heads as usize, kv as usize))
            }
            "qwen2" => None,
            other => {
                return Err(ModelError::Config {
                    path: file.path().to_path_buf(),
                    message: format!(
                        "GGUF architecture `{other}` is not supported (supported: {})",
                        SUPPORTED_ARCHITECTURES.join(", ")
                    ),
                });
            }
        };
        Ok(Self {
            file,
            permuted_heads,
        })
    }

    /// The underlying file.
    pub fn file(&self) -> &GgufFile {
        &self.file
    }

    /// Hugging Face names of all tensors this source serves, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .file
            .tensors()
            .iter()
            .filter_map(|t| gguf_to_hf_name(t.name()))
            .collect();
        names.sort();
        names
    }

    fn info(&self, name: &str) -> Option<&TensorInfo> {
        self.file.tensor(&hf_to_gguf_name(name)?)
    }

    /// The head count whose rows are reordered in GGUF tensor `gguf_name`, if any.
    fn permutation(&self, gguf_name: &str) -> Option<usize> {
        let (heads, kv_heads) = self.permuted_heads?;
        let module = gguf_name.strip_prefix("blk.")?.split('.').nth(1)?;
        match module {
            "attn_q" => Some(heads),
            "attn_k" => Some(kv_heads),
            _ => None,
        }
    }

    fn error(&self, message: String) -> ModelError {
        ModelError::Checkpoint {
            path: self.file.path().to_path_buf(),
            message,
        }
    }

    /// Dequantizes `info` to f32 into `out` in Hugging Face layout, releasing the file's pages
    /// chunk by chunk.
    fn dequantize_into(
        &self,
        hf_name: &str,
        info: &TensorInfo,
        heads: Option<usize>,
        out: &mut [f32],
    ) -> Result<()> {
        let range = self.file.tensor_range(info)?;
        let src = self.file.tensor_data(info)?;
        let ty = info.ggml_type();
        let shape = info.shape();
        let rows = shape.first().copied().unwrap_or(1).max(1);
        let row_len = out.len() / rows;
        let (block, block_bytes) = ty
            .block_layout()
            .ok_or_else(|| dequant_error(&self.file, info.name(), DequantError::Unsupported(ty)))?;
        let fail = |e: DequantError| dequant_error(&self.file, info.name(), e);
        // Checked once here, so the chunked loops below cannot silently leave part of `out` unset.
        if ty.byte_len(out.len() as u64) != Some(src.len() as u64) {
            return Err(self.error(format!(
                "tensor `{}`: {} bytes of {ty} data for {} elements",
                info.name(),
                src.len(),
                out.len()
            )));
        }

        let Some(heads) = heads else {
            // Whole blocks at a time, about CHUNK_BYTES of input per step.
            let blocks_per_chunk = (CHUNK_BYTES / block_bytes).max(1);
            let mut done_blocks = 0;
            for (src_chunk, out_chunk) in src
                .chunks(blocks_per_chunk * block_bytes)
                .zip(out.chunks_mut(blocks_per_chunk * block))
            {
                dequant::dequantize(ty, src_chunk, out_chunk).map_err(fail)?;
                let start = range.start + done_blocks * block_bytes;
                self.file.release_bytes(start..start + src_chunk.len());
                done_blocks += blocks_per_chunk;
            }
            return Ok(());
        };

        let head_dim = rows / heads;
        if heads > rows || rows % heads != 0 || head_dim % 2 != 0 {
            return Err(self.error(format!(
                "tensor `{}` ({hf_name}) has {rows} rows, which cannot be split into {heads} heads \
                 of even size to undo llama.cpp's rotary row order",
                info.name()
            )));
        }
        if row_len.is_multiple_of(block) && row_len > 0 {
            // Each stored row is whole blocks: decode it straight into its Hugging Face row.
            let row_bytes = row_len / block * block_bytes;
            let rows_per_chunk = (CHUNK_BYTES / row_bytes).max(1);
            for (chunk_index, src_chunk) in src.chunks(rows_per_chunk * row_bytes).enumerate() {
                for (i, src_row) in src_chunk.chunks(row_bytes).enumerate() {
                    let g = chunk_index * rows_per_chunk + i;
                    let r = unpermute_row(g, head_dim);
                    let dst = out.get_mut(r * row_len..(r + 1) * row_len).ok_or_else(|| {
                        self.error(format!("tensor `{}`: row out of range", info.name()))
                    })?;
                    dequant::dequantize(ty, src_row, dst).map_err(fail)?;
                }
                let start = range.start + chunk_index * rows_per_chunk * row_bytes;
                self.file.release_bytes(start..start + src_chunk.len());
            }
        } else {
            // Rows shorter than a block (a quantized 1-D bias): decode, then reorder.
            let mut stored = vec![0f32; out.len()];
            dequant::dequantize(ty, src, &mut stored).map_err(fail)?;
            for (g, row) in stored.chunks(row_len.max(1)).enumerate() {
                let r = unpermute_row(g, head_dim);
                if let Some(dst) = out.get_mut(r * row_len..(r + 1) * row_len) {
                    dst.copy_from_slice(row);
                }
            }
        }
        Ok(())
    }
}

/// The Hugging Face row of stored row `g` of a llama.cpp Q or K projection with heads of
/// `head_dim` rows.
///
/// Hugging Face's rotary embedding pairs dimension `i` of a head with `i + head_dim / 2`
/// (`rotate_half`); ggml's llama rotary pairs `2i` with `2i + 1`. convert_hf_to_gguf.py therefore
/// stores HF row `h * head_dim + j * head_dim / 2 + i` (`j` in {0, 1}) at row
/// `h * head_dim + 2i + j`; this inverts that.
pub fn unpermute_row(g: usize, head_dim: usize) -> usize {
    let half = head_dim / 2;
    let (h, r) = (g / head_dim, g % head_dim);
    h * head_dim + (r % 2) * half + r / 2
}

/// A dequantization error for tensor `name` of `file` as a [`ModelError`].
pub(crate) fn dequant_error(file: &GgufFile, name: &str, e: DequantError) -> ModelError {
    match e {
        DequantError::Unsupported(ty) => ModelError::UnsupportedDtype {
            name: name.to_string(),
            path: file.path().to_path_buf(),
            dtype: format!("GGUF {ty}; cdr dequantizes {}", supported_list()),
        },
        other => ModelError::Checkpoint {
            path: file.path().to_path_buf(),
            message: format!("tensor `{name}`: {other}"),
        },
    }
}

fn supported_list() -> String {
    dequant::SUPPORTED
        .iter()
        .map(|t| t.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// An f32 buffer in anonymous memory whose pages can be returned to the system piecemeal.
struct Staging {
    map: Option<MmapMut>,
}

impl Staging {
    fn new(n_elements: usize, path: &Path) -> Result<Self> {
        if n_elements == 0 {
            return Ok(Self { map: None });
        }
        let len = n_elements
            .checked_mul(4)
            .ok_or_else(|| ModelError::Checkpoint {
                path: path.to_path_buf(),
                message: format!("tensor of {n_elements} elements is too large"),
            })?;
        let map = MmapMut::map_anon(len).map_err(|e| ModelError::io(path, e))?;
        Ok(Self { map: Some(map) })
    }

    fn floats_mut(&mut self) -> &mut [f32] {
        match &mut self.map {
            // Anonymous mappings are page-aligned and the length is 4 * n, so the cast succeeds.
            Some(map) => bytemuck::try_cast_slice_mut(&mut map[..]).unwrap_or(&mut []),
            None => &mut [],
        }
    }

    fn bytes(&self) -> &[u8] {
        self.map.as_deref().unwrap_or(&[])
    }

    /// Returns the pages lying entirely inside `range` to the system.
    fn release(&self, range: Range<usize>) {
        let Some(map) = &self.map else { return };
        let start = range.start.div_ceil(PAGE) * PAGE;
        let end = range.end.min(map.len()) / PAGE * PAGE;
        if end > start {
            // SAFETY: `convert` reads each range of the buffer once, in order, and reports it
            // consumed afterwards; nothing reads these pages again (they would read as zeros).
            // Only pages wholly inside the consumed range are dropped, never a partly unread one.
            let _ = unsafe {
                map.unchecked_advise_range(UncheckedAdvice::DontNeed, start, end - start)
            };
        }
    }
}

impl WeightSource for GgufWeights {
    fn location(&self) -> &Path {
        self.file.path()
    }

    fn file_of(&self, _name: &str) -> PathBuf {
        self.file.path().to_path_buf()
    }

    fn contains(&self, name: &str) -> bool {
        self.info(name).is_some()
    }

    fn with_tensor(
        &self,
        name: &str,
        f: &mut dyn FnMut(RawTensor<'_>) -> Result<TensorData>,
    ) -> Result<Option<TensorData>> {
        let Some(info) = self.info(name) else {
            return Ok(None);
        };
        let heads = self.permutation(info.name());
        let shape = info.shape();
        let ty = info.ggml_type();

        let direct = match ty {
            GgmlType::F32 => Some(StoredDtype::F32),
            GgmlType::F16 => Some(StoredDtype::F16),
            GgmlType::BF16 => Some(StoredDtype::BF16),
            _ => None,
        };
        if let (Some(dtype), None) = (direct, heads) {
            let range = self.file.tensor_range(info)?;
            let bytes = self.file.tensor_data(info)?;
            let base = range.start;
            let consumed = |r: Range<usize>| self.file.release_bytes(base + r.start..base + r.end);
            return f(RawTensor {
                dtype,
                shape,
                bytes,
                consumed: Some(&consumed),
            })
            .map(Some);
        }

        if !dequant::is_supported(ty) {
            return Err(dequant_error(
                &self.file,
                info.name(),
                DequantError::Unsupported(ty),
            ));
        }
        let n = usize::try_from(info.n_elements())
            .map_err(|_| self.error(format!("tensor `{}` is too large", info.name())))?;
        let mut staging = Staging::new(n, self.file.path())?;
        let out = staging.floats_mut();
        if out.len() != n {
            return Err(self.error(format!(
                "could not allocate a staging buffer for tensor `{}`",
                info.name()
            )));
        }
        self.dequantize_into(name, info, heads, out)?;
        let release = |r: Range<usize>| staging.release(r);
        f(RawTensor {
            dtype: StoredDtype::F32,
            shape,
            bytes: staging.bytes(),
            consumed: Some(&release),
        })
        .map(Some)
    }
}
