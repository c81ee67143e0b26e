#!/usr/bin/env python3
"""Fixtures for `cdr-models/tests/gguf_tokenizer.rs`: GGUF tokenizers and the ids transformers gives.

cdr builds a `tokenizers::Tokenizer` from a GGUF file's `tokenizer.ggml.*` metadata
(`cdr-models/src/gguf/tokenizer.rs`); its ids must be the ones transformers produces when it loads
the same file with `AutoTokenizer.from_pretrained(dir, gguf_file=...)`. This script writes, under
`cdr-models/tests/fixtures/gguf_tokenizer/`:

* `spm_llama.gguf` + `spm_llama_expected.json`: a SentencePiece-style ("llama") vocabulary. A tiny
  SentencePiece BPE model (byte fallback on) is trained here on a corpus built into this script and
  written, with no tensors, as a GGUF of architecture `llama`: tokens, scores, token types
  (SentencePiece's piece types are GGUF's), bos/eos/unk ids and no `add_bos_token` key (transformers
  and llama.cpp then add BOS). Merges are not stored, so they are derived from the scores.
* `qwen2_bpe.gguf` + `qwen2_bpe_expected.json`: a byte-level BPE ("gpt2") vocabulary with
  `tokenizer.ggml.pre = "qwen2"`, built from the vocabulary and merges of the tiny BPE tokenizer in
  `cdr-models/tests/fixtures/llama_gqa/tokenizer.json`. Ids 0-10 are marked control; three tokens
  are appended: `<think>` (user-defined), `<ctrl space>` (control, but spelled with a character
  outside the byte-level alphabet, which transformers does not add as a special token) and
  `<|endoftext|>` (control; bos and pad, as in Qwen2.5's GGUFs; transformers' `Qwen2Tokenizer` would
  otherwise append it as a new token of its own).
* `smollm2_expected.json`: ids for the real `.cache/assets/SmolLM2-135M-Instruct.Q4_1.gguf` (fetched
  by `tools/fetch_assets.sh`; byte-level BPE, pre `smollm`). Its 49k-token vocabulary is not copied
  here: the Rust test reads it from the GGUF itself.

Each expected file holds, per text, the ids with `add_special_tokens=False` (what cdr uses), the ids
with `add_special_tokens=True` (transformers' default) and `decode(ids)`, plus the id of each special
token.

Deterministic: the corpus is fixed, SentencePiece trains on one thread, GGUFWriter writes the keys in
the order they are added. Run from the repository root with the fixtures venv:

    /tmp/fxvenv/bin/pip install gguf sentencepiece protobuf accelerate
    /tmp/fxvenv/bin/python tools/make_gguf_tokenizer_fixtures.py

The versions used are recorded in each expected file.
"""

from __future__ import annotations

import io
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import gguf  # noqa: E402
import sentencepiece as spm  # noqa: E402
from transformers import AutoTokenizer  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "cdr-models" / "tests" / "fixtures" / "gguf_tokenizer"
SMOLLM2 = ROOT / ".cache" / "assets" / "SmolLM2-135M-Instruct.Q4_1.gguf"
BPE_SOURCE = ROOT / "cdr-models" / "tests" / "fixtures" / "llama_gqa" / "tokenizer.json"

# Texts every case is checked on.
COMMON_TEXTS = [
    "Hello world",
    "The quick brown fox jumps over the lazy dog.",
    "def add(a, b):\n    return a + b\n\tindented\twith\ttabs",
    "Numbers: 12345 and 3.14159, 1,000,000 and 2024-01-31.",
    "Café, niño, señor, naïve résumé",
    "日本語のテキスト",
    "Emoji: 🙂🚀 and ❤️",
    "multiple    spaces   here",
    "  leading spaces",
    "trailing spaces   ",
    "line one\nline two\n\n\nline five\r\nwindows",
    "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n",
    "I'm sure they'll say it's OK, we've done what you'd SAY'D.",
    "x",
    "",
    "   ",
    "\n",
    "mixed: abc123def 世界 ... !!! ???",
]

def _package_version(name: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return None


VERSIONS = {name: _package_version(name) for name in ("transformers", "tokenizers", "gguf", "sentencepiece")}


def expected_for(gguf_path: Path, texts: list[str], specials: list[str], source: str) -> dict:
    """Loads `gguf_path` with transformers and records its ids for `texts`."""
    tok = AutoTokenizer.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name)
    cases = []
    for text in texts:
        ids = tok(text, add_special_tokens=False)["input_ids"]
        cases.append(
            {
                "text": text,
                "ids": ids,
                "ids_with_special": tok(text, add_special_tokens=True)["input_ids"],
                "decoded": tok.decode(ids),
            }
        )
    special = {}
    for s in specials:
        ids = tok(s, add_special_tokens=False)["input_ids"]
        assert len(ids) == 1, f"{s!r} is not a single token: {ids}"
        special[s] = ids[0]
    return {
        "source": source,
        "generated_by": "tools/make_gguf_tokenizer_fixtures.py",
        "versions": VERSIONS,
        "tokenizer_class": type(tok).__name__,
        "special_tokens": special,
        "cases": cases,
    }


def write_json(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {path.relative_to(ROOT)}")


# --------------------------------------------------------------------------------------------------
# SentencePiece ("llama") case
# --------------------------------------------------------------------------------------------------

SPM_CORPUS_LINES = [
    "The quick brown fox jumps over the lazy dog.",
    "Hello world, hello tokenizer, hello byte fallback.",
    "A tokenizer splits text into pieces; the model reads the pieces as ids.",
    "Numbers like 12345, 3.14159 and 2024 appear in text too.",
    "def add(a, b): return a + b",
    "for i in range(10): print(i)",
    "She said that the weather was nice, and they went for a walk in the park.",
    "Language models predict the next token from the previous tokens.",
    "Training data should be clean, diverse and large enough for the task.",
    "Café and résumé are French words; niño is Spanish.",
    "I'm sure they'll say it's fine, we've seen what you'd do.",
    "multiple spaces and    tabs\tappear in code and in prose",
    "the theory of the thing is that there are three of them there",
    "when where what which while whether white whole",
    "interesting information international internet interpretation",
]


def spm_corpus() -> list[str]:
    """A fixed corpus: the lines above, and some recombinations of their words for more merges."""
    lines = list(SPM_CORPUS_LINES)
    words = " ".join(SPM_CORPUS_LINES).split()
    for step in (3, 5, 7, 11):
        lines.append(" ".join(words[i] for i in range(0, len(words), step)))
        lines.append(" ".join(reversed(words[::step])))
    return lines * 4


def make_spm_gguf(path: Path) -> None:
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(spm_corpus()),
        model_writer=model,
        model_type="bpe",
        vocab_size=420,
        byte_fallback=True,
        character_coverage=0.995,  # some rare corpus characters go through byte fallback
        num_threads=1,
        normalization_rule_name="identity",
        add_dummy_prefix=True,
        remove_extra_whitespaces=False,
        split_digits=False,
        control_symbols=["<|im_start|>", "<|im_end|>"],
        user_defined_symbols=["<think>"],
        unk_id=0,
        bos_id=1,
        eos_id=2,
        pad_id=-1,
        minloglevel=2,
        shuffle_input_sentence=False,
        seed_sentencepiece_size=100000,
    )
    sp = spm.SentencePieceProcessor(model_proto=model.getvalue())
    n = sp.get_piece_size()
    tokens = [sp.id_to_piece(i) for i in range(n)]
    scores = [float(sp.get_score(i)) for i in range(n)]
    types = []
    for i in range(n):
        if sp.is_unknown(i):
            types.append(2)
        elif sp.is_control(i):
            types.append(3)
        elif sp.is_byte(i):
            types.append(6)
        elif sp.is_unused(i):
            types.append(5)
        elif tokens[i] == "<think>":
            types.append(4)  # the Python API has no is_user_defined
        else:
            types.append(1)

    w = gguf.GGUFWriter(str(path), arch="llama")
    w.add_name("cdr spm tokenizer fixture")
    add_llama_shape(w, "llama", n)
    w.add_tokenizer_model("llama")
    w.add_token_list(tokens)
    w.add_token_scores(scores)
    w.add_token_types(types)
    w.add_bos_token_id(sp.bos_id())
    w.add_eos_token_id(sp.eos_id())
    w.add_unk_token_id(sp.unk_id())
    write_gguf(w)
    print(f"wrote {path.relative_to(ROOT)} ({n} tokens)")


def add_llama_shape(w: gguf.GGUFWriter, arch: str, vocab: int) -> None:
    """Hyperparameters transformers needs to build a config for the file (no tensors are stored)."""
    w.add_context_length(128)
    w.add_embedding_length(16)
    w.add_block_count(1)
    w.add_feed_forward_length(32)
    w.add_head_count(2)
    w.add_head_count_kv(1)
    w.add_rope_dimension_count(8)
    w.add_layer_norm_rms_eps(1e-6)
    w.add_vocab_size(vocab)


def write_gguf(w: gguf.GGUFWriter) -> None:
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


# --------------------------------------------------------------------------------------------------
# byte-level BPE ("gpt2", pre "qwen2") case
# --------------------------------------------------------------------------------------------------

def make_qwen2_gguf(path: Path) -> None:
    source = json.loads(BPE_SOURCE.read_text(encoding="utf-8"))
    vocab = source["model"]["vocab"]
    tokens = [None] * len(vocab)
    for token, index in vocab.items():
        tokens[index] = token
    assert all(t is not None for t in tokens)
    merges = [m if isinstance(m, str) else " ".join(m) for m in source["model"]["merges"]]
    special_ids = {t["id"] for t in source["added_tokens"] if t["special"]}
    types = [3 if i in special_ids else 1 for i in range(len(tokens))]
    tokens += ["<think>", "<ctrl space>", "<|endoftext|>"]
    types += [4, 3, 3]

    w = gguf.GGUFWriter(str(path), arch="qwen2")
    w.add_name("cdr qwen2 byte-level tokenizer fixture")
    add_llama_shape(w, "qwen2", len(tokens))
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("qwen2")
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(merges)
    # As in Qwen2.5's GGUFs: bos and pad are <|endoftext|>, eos is <|im_end|>, no BOS is added.
    w.add_bos_token_id(tokens.index("<|endoftext|>"))
    w.add_eos_token_id(tokens.index("<|im_end|>"))
    w.add_pad_token_id(tokens.index("<|endoftext|>"))
    w.add_add_bos_token(False)
    write_gguf(w)
    print(f"wrote {path.relative_to(ROOT)} ({len(tokens)} tokens, {len(merges)} merges)")


def main() -> int:
    OUT.mkdir(parents=True, exist_ok=True)

    spm_path = OUT / "spm_llama.gguf"
    make_spm_gguf(spm_path)
    spm_texts = COMMON_TEXTS + [
        "<think>reasoning</think> answer",
        "<s>bos in text</s>",
        "tokenizer tokenizers tokenization",
        "ÿ þ ß ø ¿ ¡ ∑ ∫ √ ≈",
        "▁ already has the meta symbol",
    ]
    write_json(
        OUT / "spm_llama_expected.json",
        expected_for(spm_path, spm_texts, ["<|im_start|>", "<|im_end|>", "<s>", "</s>", "<think>"], "spm_llama.gguf"),
    )

    qwen_path = OUT / "qwen2_bpe.gguf"
    make_qwen2_gguf(qwen_path)
    qwen_texts = COMMON_TEXTS + [
        "<think>reasoning</think> answer",
        "<ctrl space> is not special",
        "text<|endoftext|>more text",
        "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>",
        "[INST] question [/INST]",
        "HELLO'S WORLD'LL 123456789 ٣٤٥",
    ]
    write_json(
        OUT / "qwen2_bpe_expected.json",
        expected_for(
            qwen_path,
            qwen_texts,
            ["<|im_start|>", "<|im_end|>", "<|endoftext|>", "<s>", "</s>", "<pad>", "<|eot_id|>", "[INST]", "<think>"],
            "qwen2_bpe.gguf",
        ),
    )

    if SMOLLM2.is_file():
        smol_texts = COMMON_TEXTS + [
            "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n",
            "<|endoftext|><repo_name>cdr<file_sep>src/main.rs",
            " 123 4567 89",
        ]
        write_json(
            OUT / "smollm2_expected.json",
            expected_for(
                SMOLLM2,
                smol_texts,
                ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<repo_name>", "<file_sep>", "<empty_output>"],
                "SmolLM2-135M-Instruct.Q4_1.gguf (HuggingFaceTB/SmolLM2-135M-Instruct, see tools/fetch_assets.sh)",
            ),
        )
    else:
        print(f"NOTE: {SMOLLM2} is absent; smollm2_expected.json left as it is (run tools/fetch_assets.sh)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
