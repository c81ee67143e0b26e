//! Tokenizer loading (`tokenizer.json`, offline).

use std::path::Path;

pub use tokenizers::Tokenizer;

use crate::error::{ModelError, Result};

pub const TOKENIZER_FILE: &str = "tokenizer.json";

/// Loads a `tokenizer.json`; no network access is ever attempted.
pub fn load_tokenizer(path: impl AsRef<Path>) -> Result<Tokenizer> {
    let path = path.as_ref();
    if !path.is_file() {
        return Err(ModelError::Tokenizer {
            path: path.to_path_buf(),
            message: "file not found".into(),
        });
    }
    Tokenizer::from_file(path).map_err(|e| ModelError::Tokenizer {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

/// The pre-tokenization regex transformers' `Qwen2Tokenizer` builds in (the one Qwen2 checkpoints'
/// own `tokenizer.json` files carry).
const QWEN2_PRETOKENIZE: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// Applies what transformers 5's `AutoTokenizer` does to a `tokenizer.json` of a model with this
/// `model_type`, so that text tokenizes as it does there.
///
/// For `qwen2`, transformers always builds its `Qwen2Tokenizer` (the model type is on its list of
/// checkpoints whose declared tokenizer class is not trusted): the BPE vocabulary and merges of the
/// file with NFC normalization, Qwen2's split regex and byte-level encoding. Published Qwen2
/// checkpoints ship exactly that pipeline, so for them nothing changes; a Qwen2 model saved with
/// another BPE tokenizer (GPT-2 style pre-tokenization) would otherwise split runs of whitespace
/// differently. Other model types keep the file as written, as transformers does for them.
pub fn as_transformers_loads(mut tokenizer: Tokenizer, model_type: &str) -> Result<Tokenizer> {
    use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
    use tokenizers::models::ModelWrapper;
    use tokenizers::normalizers::unicode::NFC;
    use tokenizers::pre_tokenizers::{
        PreTokenizerWrapper, byte_level::ByteLevel, sequence::Sequence, split::Split,
    };
    use tokenizers::tokenizer::SplitDelimiterBehavior;

    if model_type != "qwen2" || !matches!(tokenizer.get_model(), ModelWrapper::BPE(_)) {
        return Ok(tokenizer);
    }
    let bad = |e: tokenizers::Error| ModelError::Tokenizer {
        path: "tokenizer.json".into(),
        message: format!("cannot build the Qwen2 pre-tokenizer: {e}"),
    };
    let split = Split::new(
        tokenizers::pre_tokenizers::split::SplitPattern::Regex(QWEN2_PRETOKENIZE.into()),
        SplitDelimiterBehavior::Isolated,
        false,
    )
    .map_err(bad)?;
    tokenizer.with_normalizer(Some(NFC)).map_err(bad)?;
    tokenizer.with_pre_tokenizer(Some(Sequence::new(vec![
        PreTokenizerWrapper::Split(split),
        PreTokenizerWrapper::ByteLevel(ByteLevel::new(false, true, false)),
    ])));
    tokenizer.with_decoder(Some(ByteLevelDecoder::default()));
    Ok(tokenizer)
}
