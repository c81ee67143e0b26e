//! GGUF checkpoints (llama.cpp's format): parsing, dequantization, and loading into the
//! Llama-family decoder.
//!
//! - [`GgufFile`] maps a GGUF v2/v3 file and parses its metadata and tensor directory, checking
//!   every length, count and data range against the file, so a corrupt file is an error rather
//!   than a panic or a huge allocation.
//! - [`dequantize`] decodes F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0 and the K-quants Q2_K,
//!   Q3_K, Q4_K, Q5_K, Q6_K to f32, bit-identically to ggml's reference decoders.
//! - [`GgufWeights`] is a [`WeightSource`](crate::WeightSource) serving the file's tensors under
//!   Hugging Face names in Hugging Face layout (undoing llama.cpp's Q/K row order for `llama`).
//! - [`config_from_gguf`] builds the [`Config`](crate::Config) from the metadata, and
//!   [`chat_template`] returns `tokenizer.chat_template`.
//!
//! ```no_run
//! use cdr_models::backend::Cpu;
//! use cdr_models::gguf::{GgufWeights, config_from_gguf};
//! use cdr_models::{ComputeDtype, LlamaForCausalLm, Weights};
//!
//! # fn main() -> Result<(), cdr_models::ModelError> {
//! let weights = GgufWeights::open("model.Q4_K_M.gguf")?;
//! let config = config_from_gguf(weights.file())?;
//! let device = Default::default();
//! let model = LlamaForCausalLm::<Cpu>::load(
//!     &Weights::new(&weights, &device, ComputeDtype::F32),
//!     &config,
//! )?;
//! # Ok(())
//! # }
//! ```

mod config;
mod dequant;
mod reader;
pub mod tokenizer;
mod weights;

pub use config::{chat_template, config_from_gguf};
pub use dequant::{DequantError, SUPPORTED as SUPPORTED_TYPES, dequantize, is_supported};
pub use reader::{
    DEFAULT_ALIGNMENT, GGUF_MAGIC, GgmlType, GgufFile, MAX_DIMS, MetadataArray, MetadataValue,
    TensorInfo,
};
pub use weights::{
    GgufWeights, SUPPORTED_ARCHITECTURES, gguf_to_hf_name, hf_to_gguf_name, unpermute_row,
};
