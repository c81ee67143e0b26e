//! A Hugging Face [`Tokenizer`] built from a GGUF file's `tokenizer.ggml.*` metadata.
//!
//! A GGUF carries no `tokenizer.json`: only the vocabulary, its token types, SentencePiece scores or
//! BPE merges, and the special token ids. [`build_tokenizer`] rebuilds from those the tokenizer that
//! transformers builds when it loads the same file (`AutoTokenizer.from_pretrained(dir,
//! gguf_file=...)`, transformers 5.x, `integrations/gguf/gguf_tokenizer_mapping.py`), so the ids are
//! the same:
//!
//! - `tokenizer.ggml.model = "gpt2"`: byte-level BPE. Tokens spelled with characters outside the
//!   byte-level alphabet are respelled through it; merges come from the file (or, when it has none,
//!   from the vocabulary). The pre-tokenizer is GPT-2's (`ByteLevel` with its built-in regex) unless
//!   `tokenizer.ggml.pre` names a split transformers knows (see [`pre_tokenizer_split`]); then it is
//!   that regex (`Split`, isolated) followed by `ByteLevel` without regex. Decoder: `ByteLevel`.
//! - `tokenizer.ggml.model = "llama"`: SentencePiece-style BPE with byte fallback (`<0x..>` tokens).
//!   Merges come from the file if it has some, else they are derived from the vocabulary and the
//!   scores (every split of a token into two vocabulary pieces, best score first). Pre-tokenizer:
//!   `Metaspace("▁", prepend_scheme = first, split = false)`; no normalizer; decoder
//!   `Replace("▁", " ")`, `ByteFallback`, `Fuse`, `Strip(" ", 1, 0)`.
//!
//! In both, control tokens (type 3) and the bos/eos/unk/pad tokens become special added tokens
//! (matched whole in the text before anything else, so chat markers like `<|im_start|>` stay one
//! token), and user-defined tokens (type 4) become non-special added tokens. The post-processor adds
//! BOS (and EOS) when `encode(text, true)` is asked for, as `tokenizer.ggml.add_bos_token` /
//! `add_eos_token` say; a `llama` vocabulary without the flag adds BOS, as transformers and
//! llama.cpp do.
//!
//! This module depends only on `tokenizers`, `serde_json`, `tracing` and std: it takes plain data
//! ([`GgufTokenizerData`]), so any GGUF reader can feed it.

use std::collections::{HashMap, HashSet};

use serde_json::json;

use tokenizers::decoders::byte_fallback::ByteFallback;
use tokenizers::decoders::fuse::Fuse;
use tokenizers::decoders::sequence::Sequence as DecoderSequence;
use tokenizers::decoders::strip::Strip;
use tokenizers::models::bpe::{BPE, Vocab};
use tokenizers::normalizers::replace::Replace;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::metaspace::{Metaspace, PrependScheme};
use tokenizers::pre_tokenizers::sequence::Sequence as PreTokenizerSequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::processors::template::TemplateProcessing;
use tokenizers::{
    AddedToken, DecoderWrapper, PreTokenizerWrapper, SplitDelimiterBehavior, Tokenizer,
};

/// GGUF token types (`tokenizer.ggml.token_type`), as llama.cpp and SentencePiece number them.
pub mod token_type {
    pub const NORMAL: i32 = 1;
    pub const UNKNOWN: i32 = 2;
    pub const CONTROL: i32 = 3;
    pub const USER_DEFINED: i32 = 4;
    pub const UNUSED: i32 = 5;
    pub const BYTE: i32 = 6;
}

/// The `tokenizer.ggml.*` metadata of a GGUF file that a tokenizer is built from.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GgufTokenizerData {
    /// `tokenizer.ggml.model`: `"gpt2"` (byte-level BPE) or `"llama"` (SentencePiece-style BPE with
    /// byte fallback).
    pub model: String,
    /// `tokenizer.ggml.pre`: selects the pre-tokenizer split of a byte-level vocabulary
    /// (`"qwen2"`, `"llama-bpe"`, `"smollm"`, `"default"`, ...).
    pub pre: Option<String>,
    /// `tokenizer.ggml.tokens`, indexed by id.
    pub tokens: Vec<String>,
    /// `tokenizer.ggml.token_type`: 1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused,
    /// 6 byte ([`token_type`]). May be empty.
    pub token_types: Vec<i32>,
    /// `tokenizer.ggml.scores`: SentencePiece scores (`llama` model). May be empty.
    pub scores: Vec<f32>,
    /// `tokenizer.ggml.merges`: `"left right"` pairs, best first (`gpt2` model). May be empty.
    pub merges: Vec<String>,
    /// `tokenizer.ggml.bos_token_id`.
    pub bos_id: Option<u32>,
    /// `tokenizer.ggml.eos_token_id`.
    pub eos_id: Option<u32>,
    /// `tokenizer.ggml.unknown_token_id`.
    pub unk_id: Option<u32>,
    /// `tokenizer.ggml.padding_token_id`.
    pub pad_id: Option<u32>,
    /// `tokenizer.ggml.add_bos_token`; absent means yes for `llama`, no for `gpt2`.
    pub add_bos: Option<bool>,
    /// `tokenizer.ggml.add_eos_token`; absent means no.
    pub add_eos: Option<bool>,
}

/// The pre-tokenizer split regexes transformers applies to a vocabulary, by `tokenizer.ggml.pre`.
mod splits {
    /// Llama 3's split: contractions, letters with one leading non-letter, numbers in runs of at
    /// most three digits, punctuation runs, newlines, other whitespace.
    pub const LLAMA3: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
    /// Qwen2's: Llama 3's with every digit on its own.
    pub const QWEN2: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
    /// Qwen3.5's: Qwen2's with combining marks (`\p{M}`) kept inside words.
    pub const QWEN35: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?[\p{L}\p{M}]+|\p{N}| ?[^\s\p{L}\p{M}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
    /// Mistral's tekken: case-aware words, single digits, no contraction rule.
    pub const TEKKEN: &str = r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+";
    /// GPT-4o's (o200k): case-aware words with trailing contractions, numbers by three.
    pub const GPT4O: &str = r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+";
}

/// `tokenizer.ggml.pre` values whose vocabularies transformers splits with a regex of its own
/// (instead of GPT-2's), and that regex. The same table as transformers'
/// `GGUF_PRE_TOKENIZER_SPLITS`.
const PRE_TOKENIZER_SPLITS: &[(&str, &str)] = &[
    ("llama3", splits::LLAMA3),
    ("llama-v3", splits::LLAMA3),
    ("llama-bpe", splits::LLAMA3),
    ("falcon3", splits::LLAMA3),
    ("falcon-h1", splits::LLAMA3),
    ("pixtral", splits::LLAMA3),
    ("midm-2.0", splits::LLAMA3),
    ("lfm2", splits::LLAMA3),
    ("jina-v5-nano", splits::LLAMA3),
    ("dbrx", splits::LLAMA3),
    ("smaug-bpe", splits::LLAMA3),
    ("tekken", splits::TEKKEN),
    ("qwen2", splits::QWEN2),
    ("deepseek-r1-qwen", splits::QWEN2),
    ("kormo", splits::QWEN2),
    ("f2llmv2", splits::QWEN2),
    ("megrez", splits::QWEN2),
    ("qwen35", splits::QWEN35),
    ("gpt-4o", splits::GPT4O),
    ("llama4", splits::GPT4O),
    ("kanana2", splits::GPT4O),
    ("talkie", splits::GPT4O),
    ("minimax-m2", splits::GPT4O),
];

/// `tokenizer.ggml.pre` values that are known to get GPT-2's own split in transformers, so no
/// warning is due for them. (`smollm`: SmolLM's original tokenizer also isolates digits, which
/// transformers does not do for the GGUF; its merges hold no multi-digit tokens, so only a space
/// before a number can tokenize differently from the original `tokenizer.json`.)
const GPT2_SPLIT_PRES: &[&str] = &["default", "gpt-2", "gpt2", "smollm", "starcoder"];

/// The split regex a byte-level vocabulary with this `tokenizer.ggml.pre` is pre-tokenized with, or
/// `None` for GPT-2's own (the `ByteLevel` pre-tokenizer's built-in regex).
pub fn pre_tokenizer_split(pre: &str) -> Option<&'static str> {
    PRE_TOKENIZER_SPLITS
        .iter()
        .find(|(name, _)| *name == pre)
        .map(|(_, regex)| *regex)
}

/// Builds the tokenizer transformers builds for a GGUF with this metadata.
///
/// Errors name what is missing or inconsistent (an unsupported `tokenizer.ggml.model`, no tokens,
/// scores missing for a `llama` vocabulary without merges, a malformed merge).
pub fn build_tokenizer(data: &GgufTokenizerData) -> Result<Tokenizer, String> {
    if data.tokens.is_empty() {
        return Err("the GGUF has no tokenizer.ggml.tokens".into());
    }
    if u32::try_from(data.tokens.len()).is_err() {
        return Err(format!("{} tokens do not fit u32 ids", data.tokens.len()));
    }
    let byte_level = match data.model.as_str() {
        "gpt2" => true,
        "llama" => false,
        other => {
            return Err(format!(
                "tokenizer.ggml.model {other:?} is not supported (supported: \"gpt2\", \"llama\")"
            ));
        }
    };

    let mut tokenizer = if byte_level {
        byte_level_bpe(data)?
    } else {
        sentencepiece_bpe(data)?
    };
    add_special_tokens(&mut tokenizer, data, byte_level)?;
    // As in transformers, a known split replaces the pre-tokenizer whatever the model (a `llama`
    // vocabulary names `default` or nothing in practice, which keeps its `Metaspace`).
    if let Some(pre) = data.pre.as_deref() {
        match pre_tokenizer_split(pre) {
            Some(regex) => {
                let split = Split::new(
                    SplitPattern::Regex(regex.to_string()),
                    SplitDelimiterBehavior::Isolated,
                    false,
                )
                .map_err(|e| format!("pre-tokenizer regex for {pre:?}: {e}"))?;
                let sequence = PreTokenizerSequence::new(vec![
                    PreTokenizerWrapper::Split(split),
                    PreTokenizerWrapper::ByteLevel(ByteLevel::new(false, true, false)),
                ]);
                tokenizer.with_pre_tokenizer(Some(sequence));
            }
            None if byte_level && !GPT2_SPLIT_PRES.contains(&pre) => {
                // transformers does the same for a `pre` it has no split for.
                tracing::warn!(
                    pre,
                    "unknown tokenizer.ggml.pre; using GPT-2's byte-level split"
                );
            }
            None => {}
        }
    }
    let add_bos = data.add_bos.unwrap_or(!byte_level);
    let add_eos = data.add_eos.unwrap_or(false);
    let post_processor = post_processor(&tokenizer, data, add_bos, add_eos)?;
    tokenizer.with_post_processor(Some(post_processor));
    Ok(tokenizer)
}

/// `tokens[id]`, or `None` (with a warning) for an id past the vocabulary.
fn token_at<'a>(data: &'a GgufTokenizerData, id: Option<u32>, what: &str) -> Option<&'a str> {
    let id = id?;
    match data.tokens.get(id as usize) {
        Some(token) => Some(token),
        None => {
            tracing::warn!(
                id,
                what,
                vocab = data.tokens.len(),
                "special token id past the vocabulary; ignored"
            );
            None
        }
    }
}

/// GPT-2's byte-to-character map: printable Latin-1 bytes stand for themselves, the others for
/// the characters from U+0100 on, in byte order.
fn bytes_to_unicode() -> [char; 256] {
    let mut map = ['\0'; 256];
    let mut next = 256u32;
    for byte in 0..=255u8 {
        let printable = matches!(byte, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF);
        map[byte as usize] = if printable {
            char::from(byte)
        } else {
            // `next` stays within U+0100..=U+0143 (68 non-printable bytes), all plain scalar
            // values, so the replacement character is never produced.
            let c = char::from_u32(next).unwrap_or(char::REPLACEMENT_CHARACTER);
            next += 1;
            c
        };
    }
    map
}

/// Splits `"left right"` merges.
fn file_merges(merges: &[String]) -> Result<Vec<(String, String)>, String> {
    merges
        .iter()
        .enumerate()
        .map(|(i, merge)| {
            let mut parts = merge.split(' ');
            match (parts.next(), parts.next(), parts.next()) {
                (Some(left), Some(right), None) => Ok((left.to_string(), right.to_string())),
                _ => Err(format!(
                    "tokenizer.ggml.merges[{i}] = {merge:?} is not two tokens separated by one space"
                )),
            }
        })
        .collect()
}

/// Merges implied by a vocabulary: every way to cut a token into two tokens of the vocabulary,
/// ordered by the token's score (best first, with ties broken by the longer left piece, then the
/// longer right piece) or, without scores, by the token's id (lowest first). Cuts of one token are
/// listed by the ids of their pieces. This is the order transformers derives (`generate_merges`),
/// so that ties resolve the same way.
fn derive_merges(tokens: &[String], scores: Option<&[f32]>) -> Vec<(String, String)> {
    // token -> id: the last of duplicated tokens wins, as in a Python dict built in id order.
    let mut vocab: HashMap<&str, u32> = HashMap::with_capacity(tokens.len());
    for (id, token) in tokens.iter().enumerate() {
        vocab.insert(token, id as u32);
    }
    // token -> sort key, in the order tokens first appear (the last value wins).
    let mut order: Vec<&str> = Vec::with_capacity(tokens.len());
    let mut key: HashMap<&str, f64> = HashMap::with_capacity(tokens.len());
    for (id, token) in tokens.iter().enumerate() {
        let value = match scores {
            Some(scores) => f64::from(scores[id]),
            None => f64::from(vocab[token.as_str()]),
        };
        if key.insert(token, value).is_none() {
            order.push(token);
        }
    }

    struct Candidate<'a> {
        left: &'a str,
        right: &'a str,
        key: f64,
        left_chars: usize,
        right_chars: usize,
    }
    let mut merges: Vec<Candidate<'_>> = Vec::new();
    let mut local: Vec<Candidate<'_>> = Vec::new();
    for token in order {
        let token_key = key[token];
        local.clear();
        let total_chars = token.chars().count();
        for (cut, (byte, _)) in token.char_indices().enumerate().skip(1) {
            let (left, right) = token.split_at(byte);
            if vocab.contains_key(left) && vocab.contains_key(right) {
                local.push(Candidate {
                    left,
                    right,
                    key: token_key,
                    left_chars: cut,
                    right_chars: total_chars - cut,
                });
            }
        }
        local.sort_by_key(|c| (vocab[c.left], vocab[c.right]));
        merges.append(&mut local);
    }
    let descending = scores.is_some();
    // A stable sort: equal keys keep the order above (as Python's `sorted`, even with `reverse`).
    merges.sort_by(|a, b| {
        let ordering = a
            .key
            .partial_cmp(&b.key)
            .unwrap_or(std::cmp::Ordering::Equal)
            .then(a.left_chars.cmp(&b.left_chars))
            .then(a.right_chars.cmp(&b.right_chars));
        if descending {
            ordering.reverse()
        } else {
            ordering
        }
    });
    merges
        .into_iter()
        .map(|c| (c.left.to_string(), c.right.to_string()))
        .collect()
}

/// Byte-level BPE (`tokenizer.ggml.model = "gpt2"`).
fn byte_level_bpe(data: &GgufTokenizerData) -> Result<Tokenizer, String> {
    let spelling = bytes_to_unicode();
    let alphabet: HashSet<char> = spelling.iter().copied().collect();
    // Collected in id order, so the last of duplicated spellings wins, as in transformers' dict.
    let vocab: Vocab = data
        .tokens
        .iter()
        .enumerate()
        .map(|(id, token)| {
            let spelled = if token.chars().all(|c| alphabet.contains(&c)) {
                token.clone()
            } else {
                token.bytes().map(|b| spelling[b as usize]).collect()
            };
            (spelled, id as u32)
        })
        .collect();
    let merges = if data.merges.is_empty() {
        tracing::info!("the GGUF has no tokenizer.ggml.merges; deriving them from the vocabulary");
        derive_merges(&data.tokens, None)
    } else {
        file_merges(&data.merges)?
    };
    let bpe = BPE::builder()
        .vocab_and_merges(vocab, merges)
        .continuing_subword_prefix(String::new())
        .end_of_word_suffix(String::new())
        .fuse_unk(false)
        .byte_fallback(false)
        .build()
        .map_err(|e| format!("byte-level BPE from the GGUF vocabulary: {e}"))?;
    let mut tokenizer = Tokenizer::new(bpe);
    tokenizer.with_pre_tokenizer(Some(ByteLevel::new(false, true, true)));
    tokenizer.with_decoder(Some(ByteLevel::default()));
    Ok(tokenizer)
}

/// SentencePiece-style BPE with byte fallback (`tokenizer.ggml.model = "llama"`).
fn sentencepiece_bpe(data: &GgufTokenizerData) -> Result<Tokenizer, String> {
    let vocab: Vocab = data
        .tokens
        .iter()
        .enumerate()
        .map(|(id, token)| (token.clone(), id as u32))
        .collect();
    let merges = if !data.merges.is_empty() {
        file_merges(&data.merges)?
    } else if data.scores.len() == data.tokens.len() {
        derive_merges(&data.tokens, Some(&data.scores))
    } else {
        return Err(format!(
            "a \"llama\" tokenizer needs tokenizer.ggml.merges or one score per token ({} scores for {} tokens)",
            data.scores.len(),
            data.tokens.len()
        ));
    };
    let bpe = BPE::builder()
        .vocab_and_merges(vocab, merges)
        .fuse_unk(true)
        .byte_fallback(true)
        .build()
        .map_err(|e| format!("SentencePiece BPE from the GGUF vocabulary: {e}"))?;
    let mut tokenizer = Tokenizer::new(bpe);
    tokenizer.with_pre_tokenizer(Some(Metaspace::new('▁', PrependScheme::First, false)));
    let replace = Replace::new("▁", " ").map_err(|e| e.to_string())?;
    tokenizer.with_decoder(Some(DecoderSequence::new(vec![
        DecoderWrapper::Replace(replace),
        DecoderWrapper::ByteFallback(ByteFallback::new()),
        DecoderWrapper::Fuse(Fuse::new()),
        DecoderWrapper::Strip(Strip::new(' ', 1, 0)),
    ])));
    Ok(tokenizer)
}

/// Control tokens and bos/eos/unk/pad as special added tokens, user-defined tokens as plain added
/// tokens; none of them normalized, so they match the raw text.
fn add_special_tokens(
    tokenizer: &mut Tokenizer,
    data: &GgufTokenizerData,
    byte_level: bool,
) -> Result<(), String> {
    let alphabet: Option<HashSet<char>> =
        byte_level.then(|| bytes_to_unicode().into_iter().collect());
    let typed = |wanted: i32| {
        data.tokens
            .iter()
            .zip(data.token_types.iter())
            .filter(move |(_, t)| **t == wanted)
            .map(|(token, _)| token)
    };
    // A control token of a byte-level vocabulary spelled outside the byte alphabet is a mislabel
    // (transformers skips it; it stays an ordinary, respelled vocabulary entry).
    let control: Vec<AddedToken> = typed(token_type::CONTROL)
        .filter(|token| {
            alphabet
                .as_ref()
                .is_none_or(|a| token.chars().all(|c| a.contains(&c)))
        })
        .map(|token| AddedToken::from(token.clone(), true).normalized(false))
        .collect();
    tokenizer
        .add_special_tokens(control)
        .map_err(|e| e.to_string())?;

    let vocab = tokenizer.get_vocab(true);
    let user_defined: Vec<AddedToken> = typed(token_type::USER_DEFINED)
        .filter(|token| vocab.contains_key(token.as_str()))
        .map(|token| AddedToken::from(token.clone(), false).normalized(false))
        .collect();
    tokenizer
        .add_tokens(user_defined)
        .map_err(|e| e.to_string())?;

    let named: Vec<AddedToken> = [
        (data.bos_id, "bos"),
        (data.eos_id, "eos"),
        (data.unk_id, "unk"),
        (data.pad_id, "pad"),
    ]
    .into_iter()
    .filter_map(|(id, what)| token_at(data, id, what))
    .map(|token| AddedToken::from(token, true).normalized(false))
    .collect();
    tokenizer
        .add_special_tokens(named)
        .map_err(|e| e.to_string())?;
    Ok(())
}

/// `[BOS] $A [EOS]` (pair: `[BOS] $A [EOS] [BOS] $B [EOS]`), each special only where asked for and
/// known, as transformers' `update_post_processor` writes it.
fn post_processor(
    tokenizer: &Tokenizer,
    data: &GgufTokenizerData,
    add_bos: bool,
    add_eos: bool,
) -> Result<TemplateProcessing, String> {
    let special = |id: Option<u32>, what: &str| -> Option<(String, u32)> {
        let token = token_at(data, id, what)?;
        Some((token.to_string(), tokenizer.token_to_id(token).or(id)?))
    };
    let bos = if add_bos {
        special(data.bos_id, "bos")
    } else {
        None
    };
    let eos = if add_eos {
        special(data.eos_id, "eos")
    } else {
        None
    };

    let special_piece =
        |token: &str, type_id: u32| json!({"SpecialToken": {"id": token, "type_id": type_id}});
    let sequence = |id: &str, type_id: u32| json!({"Sequence": {"id": id, "type_id": type_id}});
    let mut single = Vec::new();
    let mut pair = Vec::new();
    for (sequence_id, type_id) in [("A", 0u32), ("B", 1)] {
        let pieces = [
            bos.as_ref().map(|(token, _)| special_piece(token, type_id)),
            Some(sequence(sequence_id, type_id)),
            eos.as_ref().map(|(token, _)| special_piece(token, type_id)),
        ];
        let pieces: Vec<_> = pieces.into_iter().flatten().collect();
        if sequence_id == "A" {
            single.clone_from(&pieces);
        }
        pair.extend(pieces);
    }
    let mut special_tokens = serde_json::Map::new();
    for (token, id) in bos.iter().chain(eos.iter()) {
        special_tokens.insert(
            token.clone(),
            json!({"id": token, "ids": [id], "tokens": [token]}),
        );
    }
    let json = json!({
        "type": "TemplateProcessing",
        "single": single,
        "pair": pair,
        "special_tokens": special_tokens,
    });
    serde_json::from_value(json).map_err(|e| format!("post-processor: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_alphabet_is_gpt2s() {
        let map = bytes_to_unicode();
        assert_eq!(map[b' ' as usize], 'Ġ');
        assert_eq!(map[b'\n' as usize], 'Ċ');
        assert_eq!(map[b'A' as usize], 'A');
        assert_eq!(map[0xAD], 'Ń');
        assert_eq!(map.iter().collect::<HashSet<_>>().len(), 256);
    }

    #[test]
    fn derived_merges_follow_score_then_piece_lengths() {
        let tokens: Vec<String> = ["a", "b", "c", "ab", "bc", "abc", "ca"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let scores = [0.0, 0.0, 0.0, -1.0, -1.0, -2.0, -0.5];
        let merges = derive_merges(&tokens, Some(&scores));
        let merges: Vec<(&str, &str)> = merges
            .iter()
            .map(|(l, r)| (l.as_str(), r.as_str()))
            .collect();
        // "ca" first (best score); "ab" and "bc" tie and keep their vocabulary order; "abc" cuts
        // into "ab c" (longer left piece) before "a bc".
        assert_eq!(
            merges,
            vec![("c", "a"), ("a", "b"), ("b", "c"), ("ab", "c"), ("a", "bc")]
        );

        // Without scores: by the merged token's id, lowest first, then the shorter pieces first.
        let merges = derive_merges(&tokens, None);
        let merges: Vec<(&str, &str)> = merges
            .iter()
            .map(|(l, r)| (l.as_str(), r.as_str()))
            .collect();
        assert_eq!(
            merges,
            vec![("a", "b"), ("b", "c"), ("a", "bc"), ("ab", "c"), ("c", "a")]
        );
    }

    #[test]
    fn unsupported_model_is_an_error() {
        let data = GgufTokenizerData {
            model: "t5".into(),
            tokens: vec!["a".into()],
            ..Default::default()
        };
        assert!(build_tokenizer(&data).unwrap_err().contains("t5"));
    }
}
