#!/usr/bin/env python3
r"""Generate the GGUF test fixtures of cdr-models (cdr-models/tests/fixtures/gguf/).

Install (CPU only; no model hub, no network at run time):

    python3 -m venv /tmp/fxvenv
    /tmp/fxvenv/bin/pip install torch transformers safetensors tokenizers numpy gguf accelerate sentencepiece

Run from anywhere, after tools/make_fixtures.py (this script reads its llama_gqa fixture):

    /tmp/fxvenv/bin/python tools/make_gguf_fixtures.py

The output folder cdr-models/tests/fixtures/gguf/ is deleted and fully rewritten.  Everything is
seeded and single-threaded, so two runs with the same library versions (recorded in the JSON files)
give byte-identical files.  The folder must stay under 1.5 MB (asserted).

Files
-----

dequant.json
    {"gguf_version", "numpy_version", "cases": [{"type", "type_id", "n_elements", "source",
    "data_hex", "expected_hex"}]}: for each ggml type cdr dequantizes (F32, F16, BF16, Q4_0, Q4_1,
    Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K), a few blocks of raw little-endian bytes and
    gguf-py's own decoding of them, gguf.quants.dequantize(), as little-endian f32 bytes (hex, so
    the comparison is bit-exact).  source says where the bytes come from:
      "quantize"  random normal data (plus an all-zero block, a constant block and a block with
                  one large outlier) quantized by gguf.quants.quantize() - for F32, F16, BF16, Q4_0,
                  Q4_1, Q5_0, Q5_1, Q8_0, the types gguf-py can quantize;
      "random"    uniformly random bytes with every f16 scale field (d, dmin, m) overwritten by a
                  finite f16 in +-[2^-10, 2) - for the K-quants, which gguf-py cannot quantize.
                  Every other bit pattern of those blocks is a valid encoding.

llama_gqa.f32.gguf, llama_gqa.mixed.gguf
    The llama_gqa fixture (tests/fixtures/llama_gqa: Llama, 8 heads / 2 kv heads, head_dim 8,
    untied lm_head) written with gguf.GGUFWriter the way llama.cpp's convert_hf_to_gguf.py writes
    a Llama: HF names mapped to llama.cpp names, and the rows of q_proj / k_proj permuted within
    each head from the HF rotary layout (dims i and i + d/2 paired) to ggml's (2i and 2i + 1
    paired): stored row h*d + 2i + j = HF row h*d + j*d/2 + i (permute_llama below).
    f32: every tensor F32.  mixed: norms F32, token_embd Q8_0, attn_q Q4_0, attn_k Q5_0,
    attn_v Q4_1, attn_output Q5_1, ffn_gate Q8_0, ffn_up BF16, ffn_down F16, output Q8_0 (every
    type gguf-py can quantize, and the Q/K permutation applied to block-quantized rows).
qwen2_tiny.f32.gguf, qwen2_tiny.q8_0.gguf
    A tiny random Qwen2ForCausalLM (hidden 64, intermediate 96, 2 layers, 4 heads, 2 kv heads,
    q/k/v biases, tied embeddings, rope_theta 1e6, rms_norm_eps 1e-6), no Q/K permutation (as
    convert_hf_to_gguf.py writes qwen2).  q8_0: every 2-D weight Q8_0, norms and biases F32, and
    general.alignment = 64 (the other files use the default 32).
    All four files carry the tiny byte-level BPE tokenizer of the other fixtures
    (tokenizer.ggml.model "gpt2", pre "default", tokens, token_type 3 for the 11 special tokens
    and 1 otherwise, merges, bos 0 "<s>", eos 4 "<|im_end|>", padding 2, add_bos_token false) and
    the chatml template of cdr-prompt/templates/chatml.jinja as tokenizer.chat_template.

expected.json
    {"transformers_version", "torch_version", "gguf_version", "models": {FILE: {"architecture",
    "sequences": [{"ids", "logprobs"}]}}}: per-token log-probs logprobs[t] =
    log_softmax(logits[t])[ids[t + 1]] in float32 with eager attention, from transformers loading
    the GGUF itself: AutoModelForCausalLM.from_pretrained(dir, gguf_file=FILE,
    torch_dtype=torch.float32) (which dequantizes with gguf-py and, for llama, un-permutes Q/K).
    Sequences: three id sequences of llama_gqa's expected.json (16 and 66 tokens of text, 40 random ids).

SmolLM2 check (only when .cache/assets/SmolLM2-135M-Instruct.Q4_1.gguf exists, fetched by
tools/fetch_assets.sh smollm2): asserts that the real llama.cpp conversion permuted Q/K, i.e.
that transformers scores it much worse without un-permuting. Nothing is written; the SmolLM2
reference for the Rust test comes from tools/make_real_fixtures.py.

Checks (asserted): transformers' GGUF loader gives back exactly the original weights for every
F32 file (so permute_llama is the inverse of its reverse permutation, and qwen2 is stored
unpermuted); a llama GGUF written without the permutation does NOT load back to the original
weights, and a qwen2 GGUF written with it does not either (transformers un-permutes llama and
only llama); the f32 llama GGUF's log-probs equal llama_gqa's expected.json (<= 1e-5); the
GGUF tokenizer that transformers builds from the metadata encodes the text sequences of llama_gqa
to the same ids as tokenizer.json; gguf-py's quantize/dequantize round trip of each quantized
type stays within its expected error.
Last generated with torch 2.15.0, transformers 5.24.0, gguf 0.19.0, numpy 2.4.6.
"""

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TQDM_DISABLE", "1")  # transformers' GGUF loader shows a progress bar

import hashlib  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

import gguf  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402
from gguf import GGMLQuantizationType as T  # noqa: E402
from safetensors.torch import load_file  # noqa: E402
from transformers import AutoModelForCausalLM, AutoTokenizer, Qwen2Config, Qwen2ForCausalLM  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "cdr-models" / "tests" / "fixtures"
SRC = FIXTURES / "llama_gqa"
OUT = FIXTURES / "gguf"
CHATML = REPO / "cdr-prompt" / "templates" / "chatml.jinja"
SMOLLM2 = REPO / ".cache" / "assets" / "SmolLM2-135M-Instruct.Q4_1.gguf"
SIZE_BUDGET = 1_500_000

SPECIAL_COUNT = 11  # ids 0..10 of the tiny tokenizer are special (see tools/make_fixtures.py)
BOS_ID, EOS_ID, PAD_ID = 0, 4, 2  # <s>, <|im_end|>, <pad>
SEQUENCE_LENGTHS = (16, 40, 66)  # of llama_gqa/expected.json: text, random ids, text (66 > 64)

# --------------------------------------------------------------------------------------------
# Dequantization cases
# --------------------------------------------------------------------------------------------

QUANTIZABLE = [(T.F32, 64), (T.F16, 64), (T.BF16, 64), (T.Q4_0, 8), (T.Q4_1, 8), (T.Q5_0, 8), (T.Q5_1, 8), (T.Q8_0, 8)]
# K-quants: (type, blocks, byte offsets of the f16 scale fields within a block)
K_QUANTS = [
    (T.Q2_K, 3, (80, 82)),
    (T.Q3_K, 3, (108,)),
    (T.Q4_K, 3, (0, 2)),
    (T.Q5_K, 3, (0, 2)),
    (T.Q6_K, 3, (208,)),
]


def quantizable_case(rng, qtype, blocks):
    block, _ = gguf.GGML_QUANT_SIZES[qtype]
    n = block * blocks
    data = rng.standard_normal(n).astype(np.float32)
    if block > 1:
        # Edge cases: an all-zero block (scale 0), a constant block, one large outlier.
        data[0:block] = 0.0
        data[block:2 * block] = 0.75
        data[2 * block + 3] = 40.0
    raw = np.ascontiguousarray(gguf.quants.quantize(data, qtype)).view(np.uint8).reshape(-1)
    expected = np.asarray(gguf.quants.dequantize(raw, qtype), dtype=np.float32).reshape(-1)
    assert expected.shape == (n,), (qtype, expected.shape)
    # A sanity bound on the round trip, so that a broken quantizer cannot slip into the fixture.
    tol = {T.F32: 0, T.F16: 1e-3, T.BF16: 1e-2, T.Q8_0: 0.02, T.Q5_0: 0.1, T.Q5_1: 0.1, T.Q4_0: 0.2, T.Q4_1: 0.2}[qtype]
    # Per block against the block's own range (the outlier block is coarse for 4/5-bit types).
    for b in range(blocks):
        s = slice(b * block, (b + 1) * block) if block > 1 else slice(0, n)
        span = max(float(np.abs(data[s]).max()), 1e-6)
        assert float(np.abs(expected[s] - data[s]).max()) <= tol * span + 1e-7, (qtype, b)
    return raw, expected


def random_kquant_case(rng, qtype, blocks, scale_offsets):
    _, size = gguf.GGML_QUANT_SIZES[qtype]
    raw = rng.integers(0, 256, size=(blocks, size), dtype=np.uint8)
    for off in scale_offsets:
        mag = np.exp2(rng.uniform(-10, 1, size=blocks)).astype(np.float16)
        sign = np.where(rng.integers(0, 2, size=blocks) == 1, -1, 1).astype(np.float16)
        raw[:, off:off + 2] = (mag * sign).view(np.uint8).reshape(blocks, 2)
    raw = raw.reshape(-1)
    expected = np.asarray(gguf.quants.dequantize(raw, qtype), dtype=np.float32).reshape(-1)
    assert np.isfinite(expected).all(), qtype
    return raw, expected


def build_dequant_fixture():
    rng = np.random.default_rng(20240611)
    cases = []
    for qtype, blocks in QUANTIZABLE:
        raw, expected = quantizable_case(rng, qtype, blocks)
        cases.append((qtype, "quantize", raw, expected))
    for qtype, blocks, offsets in K_QUANTS:
        raw, expected = random_kquant_case(rng, qtype, blocks, offsets)
        cases.append((qtype, "random", raw, expected))
    out = {
        "gguf_version": gguf_version(),
        "numpy_version": np.__version__,
        "cases": [
            {
                "type": qtype.name,
                "type_id": int(qtype),
                "n_elements": int(expected.size),
                "source": source,
                "data_hex": raw.tobytes().hex(),
                "expected_hex": expected.astype("<f4").tobytes().hex(),
            }
            for qtype, source, raw, expected in cases
        ],
    }
    write_json(OUT / "dequant.json", out)
    print("dequant.json: " + ", ".join(f"{c['type']} ({c['n_elements']})" for c in out["cases"]))


# --------------------------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------------------------

LAYER_NAMES = {
    "self_attn.q_proj": "attn_q",
    "self_attn.k_proj": "attn_k",
    "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output",
    "mlp.gate_proj": "ffn_gate",
    "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down",
    "input_layernorm": "attn_norm",
    "post_attention_layernorm": "ffn_norm",
}


def gguf_name(hf: str) -> str:
    top = {"model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight",
           "lm_head.weight": "output.weight"}
    if hf in top:
        return top[hf]
    parts = hf.split(".")
    assert parts[:2] == ["model", "layers"], hf
    layer, module, suffix = parts[2], ".".join(parts[3:-1]), parts[-1]
    return f"blk.{layer}.{LAYER_NAMES[module]}.{suffix}"


def permute_llama(w: np.ndarray, n_head: int) -> np.ndarray:
    """HF rotary row order -> llama.cpp's, per head: stored row h*d + 2i + j = HF row h*d + j*d/2 + i."""
    rows = w.shape[0]
    d = rows // n_head
    assert rows == n_head * d and d % 2 == 0
    out = np.empty_like(w)
    for h in range(n_head):
        for i in range(d // 2):
            for j in range(2):
                out[h * d + 2 * i + j] = w[h * d + j * (d // 2) + i]
    return out


def tokenizer_metadata():
    tok = json.loads((SRC / "tokenizer.json").read_text(encoding="utf-8"))
    vocab = tok["model"]["vocab"]
    for added in tok["added_tokens"]:
        vocab.setdefault(added["content"], added["id"])
    tokens = [None] * len(vocab)
    for text, i in vocab.items():
        tokens[i] = text
    assert None not in tokens and len(tokens) == 384
    merges = [m if isinstance(m, str) else " ".join(m) for m in tok["model"]["merges"]]
    types = [3 if i < SPECIAL_COUNT else 1 for i in range(len(tokens))]
    return tokens, types, merges


def add_tokenizer(w: gguf.GGUFWriter):
    tokens, types, merges = tokenizer_metadata()
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("default")
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(merges)
    w.add_bos_token_id(BOS_ID)
    w.add_eos_token_id(EOS_ID)
    w.add_pad_token_id(PAD_ID)
    w.add_add_bos_token(False)
    w.add_chat_template(CHATML.read_text(encoding="utf-8"))


def write_gguf(path: Path, arch: str, cfg: dict, tensors: dict, types: dict, permute: bool, alignment=None):
    """tensors: HF name -> float32 array (HF layout); types: HF name -> ggml type."""
    w = gguf.GGUFWriter(str(path), arch)
    w.add_name(path.stem)
    if alignment is not None:
        w.add_custom_alignment(alignment)
    w.add_context_length(cfg["max_position_embeddings"])
    w.add_embedding_length(cfg["hidden_size"])
    w.add_block_count(cfg["num_hidden_layers"])
    w.add_feed_forward_length(cfg["intermediate_size"])
    w.add_head_count(cfg["num_attention_heads"])
    w.add_head_count_kv(cfg["num_key_value_heads"])
    w.add_rope_freq_base(cfg["rope_theta"])
    w.add_layer_norm_rms_eps(cfg["rms_norm_eps"])
    if arch == "llama":
        w.add_rope_dimension_count(cfg["head_dim"])
    w.add_vocab_size(cfg["vocab_size"])
    w.add_file_type(gguf.LlamaFileType.ALL_F32)
    add_tokenizer(w)
    for hf, data in tensors.items():
        data = np.ascontiguousarray(data, dtype=np.float32)
        if permute and (".q_proj." in hf or ".k_proj." in hf):
            heads = cfg["num_attention_heads"] if ".q_proj." in hf else cfg["num_key_value_heads"]
            data = permute_llama(data, heads)
        qtype = types.get(hf, T.F32)
        if qtype == T.F32:
            w.add_tensor(gguf_name(hf), data)
        elif qtype == T.F16:
            w.add_tensor(gguf_name(hf), data.astype(np.float16))
        else:
            q = gguf.quants.quantize(data, qtype)
            w.add_tensor(gguf_name(hf), q, raw_shape=q.shape, raw_dtype=qtype)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def llama_source():
    cfg = json.loads((SRC / "config.json").read_text())
    cfg.setdefault("head_dim", cfg["hidden_size"] // cfg["num_attention_heads"])
    cfg.setdefault("rope_theta", (cfg.get("rope_parameters") or {}).get("rope_theta", 10000.0))
    tensors = {k: v.float().numpy() for k, v in sorted(load_file(str(SRC / "model.safetensors")).items())}
    return cfg, tensors


def qwen2_source():
    cfg = Qwen2Config(
        vocab_size=384, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
        rms_norm_eps=1e-6, rope_theta=1e6, tie_word_embeddings=True,
        bos_token_id=BOS_ID, eos_token_id=EOS_ID, pad_token_id=PAD_ID,
    )
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(cfg)
    gen = torch.Generator().manual_seed(5005)
    with torch.no_grad():
        # As in tools/make_fixtures.py: spread-out log-probs instead of near-uniform ones.
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=gen))
            elif "embed_tokens" in name:
                p.copy_(0.3 * torch.randn(p.shape, generator=gen))
            elif name.endswith(".bias"):
                p.copy_(0.3 * torch.randn(p.shape, generator=gen))
            else:
                p.copy_(0.2 * torch.randn(p.shape, generator=gen))
    tensors = {k: v.float().numpy().copy() for k, v in sorted(model.state_dict().items()) if k != "lm_head.weight"}
    d = cfg.to_dict()
    d["head_dim"] = cfg.hidden_size // cfg.num_attention_heads
    d["rope_theta"] = 1e6  # transformers 5 keeps it under rope_parameters
    assert (d.get("rope_parameters") or {}).get("rope_theta", 1e6) == 1e6
    return d, tensors


def load_gguf_model(path: Path):
    model = AutoModelForCausalLM.from_pretrained(
        str(path.parent), gguf_file=path.name, torch_dtype=torch.float32, attn_implementation="eager")
    model.eval()
    return model


def logprobs(model, ids):
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0].float()
    lp = torch.log_softmax(logits, dim=-1)
    return [float(lp[t, ids[t + 1]]) for t in range(len(ids) - 1)]


def state_matches(model, tensors) -> bool:
    sd = model.state_dict()
    return all(torch.equal(sd[k], torch.from_numpy(v)) for k, v in tensors.items())


def check_conventions(llama_cfg, llama_t, qwen_cfg, qwen_t):
    """transformers un-permutes Q/K for llama GGUFs and only for llama."""
    with tempfile.TemporaryDirectory() as tmp:
        p = Path(tmp) / "llama_unpermuted.gguf"
        write_gguf(p, "llama", llama_cfg, llama_t, {}, permute=False)
        assert not state_matches(load_gguf_model(p), llama_t), "transformers did not un-permute llama Q/K"
        p = Path(tmp) / "qwen2_permuted.gguf"
        write_gguf(p, "qwen2", qwen_cfg, qwen_t, {}, permute=True)
        assert not state_matches(load_gguf_model(p), qwen_t), "transformers un-permuted qwen2 Q/K"
    print("conventions: transformers un-permutes Q/K rows of llama GGUFs, not of qwen2 GGUFs")


def check_tokenizer(path: Path, sequences):
    hf = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    checked = 0
    for s in sequences:
        if s["text"] is not None:
            assert hf(s["text"], add_special_tokens=False)["input_ids"] == s["ids"], s["text"]
            checked += 1
    assert checked > 0
    print(f"{path.name}: transformers' GGUF tokenizer matches tokenizer.json on {checked} texts")


def build_models():
    src_expected = json.loads((SRC / "expected.json").read_text())
    sequences = [s for s in src_expected["sequences"] if len(s["ids"]) in SEQUENCE_LENGTHS]
    assert sorted(len(s["ids"]) for s in sequences) == sorted(SEQUENCE_LENGTHS)

    llama_cfg, llama_t = llama_source()
    qwen_cfg, qwen_t = qwen2_source()
    check_conventions(llama_cfg, llama_t, qwen_cfg, qwen_t)

    mixed = {}
    for hf in llama_t:
        if hf.endswith("norm.weight"):
            continue
        for key, qtype in [("embed_tokens", T.Q8_0), ("q_proj", T.Q4_0), ("k_proj", T.Q5_0), ("v_proj", T.Q4_1),
                           ("o_proj", T.Q5_1), ("gate_proj", T.Q8_0), ("up_proj", T.BF16), ("down_proj", T.F16),
                           ("lm_head", T.Q8_0)]:
            if key in hf:
                mixed[hf] = qtype
    q8 = {hf: T.Q8_0 for hf, v in qwen_t.items() if v.ndim == 2}

    files = [
        ("llama_gqa.f32.gguf", "llama", llama_cfg, llama_t, {}, True, None),
        ("llama_gqa.mixed.gguf", "llama", llama_cfg, llama_t, mixed, True, None),
        ("qwen2_tiny.f32.gguf", "qwen2", qwen_cfg, qwen_t, {}, False, None),
        ("qwen2_tiny.q8_0.gguf", "qwen2", qwen_cfg, qwen_t, q8, False, 64),
    ]
    models = {}
    for name, arch, cfg, tensors, types, permute, alignment in files:
        path = OUT / name
        write_gguf(path, arch, cfg, tensors, types, permute, alignment)
        model = load_gguf_model(path)
        assert model.config.model_type == arch, model.config.model_type
        if not types:
            assert state_matches(model, tensors), f"{name}: transformers does not load back the original weights"
        seqs = [{"ids": s["ids"], "logprobs": logprobs(model, s["ids"])} for s in sequences]
        if name == "llama_gqa.f32.gguf":
            for got, want in zip(seqs, sequences):
                diff = max(abs(a - b) for a, b in zip(got["logprobs"], want["logprobs"]))
                assert diff <= 1e-5, f"f32 llama GGUF differs from the safetensors fixture by {diff}"
            check_tokenizer(path, sequences)
        lps = [v for s in seqs for v in s["logprobs"]]
        print(f"{name}: {path.stat().st_size} bytes, mean log-prob {sum(lps) / len(lps):.3f}")
        models[name] = {"architecture": arch, "sequences": seqs}
    write_json(OUT / "expected.json", {
        "transformers_version": transformers.__version__,
        "torch_version": torch.__version__,
        "gguf_version": gguf_version(),
        "models": models,
    })


# --------------------------------------------------------------------------------------------
# The real SmolLM2 asset
# --------------------------------------------------------------------------------------------

SMOLLM2_TEXTS = [
    "The capital of France is Paris. It is known for the Eiffel Tower, which was built in 1889.",
    "<|im_start|>user\nWhat is 2 + 2?<|im_end|>\n<|im_start|>assistant\n2 + 2 = 4.<|im_end|>\n",
]


def build_smollm2():
    if not SMOLLM2.is_file():
        print(f"NOTE: {SMOLLM2} is absent (tools/fetch_assets.sh smollm2); permutation check not run")
        return
    from transformers.modeling_gguf_pytorch_utils import LlamaTensorProcessor

    tok = AutoTokenizer.from_pretrained(str(SMOLLM2.parent), gguf_file=SMOLLM2.name)
    model = load_gguf_model(SMOLLM2)
    seqs = []
    for text in SMOLLM2_TEXTS:
        ids = tok(text, add_special_tokens=False)["input_ids"]
        seqs.append({"text": text, "ids": ids, "logprobs": logprobs(model, ids)})
    mean = float(np.mean(seqs[0]["logprobs"]))
    del model
    original = LlamaTensorProcessor._reverse_permute_weights
    LlamaTensorProcessor._reverse_permute_weights = lambda self, w, n_head, num_kv_heads=None: w
    try:
        raw = load_gguf_model(SMOLLM2)
        mean_raw = float(np.mean(logprobs(raw, seqs[0]["ids"])))
        del raw
    finally:
        LlamaTensorProcessor._reverse_permute_weights = original
    assert mean_raw < mean - 0.3, (mean, mean_raw)
    print(f"SmolLM2: mean log-prob {mean:.3f} with Q/K un-permuted, {mean_raw:.3f} without")
    # The committed SmolLM2 reference (chat-formatted texts, token ids) is written by
    # tools/make_real_fixtures.py; this run only confirms that llama.cpp permuted Q/K in the file.


# --------------------------------------------------------------------------------------------


def gguf_version() -> str:
    from importlib.metadata import version
    return version("gguf")


def write_json(path: Path, obj):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, ensure_ascii=False, indent=1)
        f.write("\n")


def main():
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    if OUT.exists():
        shutil.rmtree(OUT)
    OUT.mkdir(parents=True)
    build_dequant_fixture()
    build_models()
    build_smollm2()
    total = 0
    for f in sorted(OUT.iterdir()):
        total += f.stat().st_size
        print(f"  {f.stat().st_size:>9}  {f.relative_to(REPO)}")
    print(f"total {total} bytes; transformers {transformers.__version__}, torch {torch.__version__}, gguf {gguf_version()}")
    assert total < SIZE_BUDGET, f"GGUF fixtures exceed {SIZE_BUDGET} bytes"


if __name__ == "__main__":
    main()
