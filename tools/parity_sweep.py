#!/usr/bin/env python3
"""End-to-end parity on randomly drawn models and published chat templates.

The committed fixtures (tools/make_fixtures.py) pin a few configurations. This sweep draws many
more — Llama, Mistral and Qwen2 classes with random sizes, GQA ratios, explicit head_dim, tied or
untied embeddings, attention/MLP biases, rope theta and scaling, sliding windows, stored in
f32/bf16/f16 — saves each with transformers' own `save_pretrained` (model and tokenizer, so the
directory is laid out exactly as transformers writes it, chat template in chat_template.jinja),
gives it a chat template drawn from the published ones (tools/fetch_assets.sh templates), and
compares `cdr logprobs --per-token` with transformers on the same rows: per-token log-probs of
every response token, the response boundary and the token ids.

The reference follows the spec (docs/method.md): the prompt is rendered with the generation
prompt; the scored text is the finished conversation when it extends the prompt, else the prompt
followed by the finished rendering from the response on; response tokens are those whose span
ends after the prompt text.

    cargo build -p cdr-cli
    /tmp/fxvenv/bin/python tools/parity_sweep.py --models 24 --seed 1   # torch + transformers venv

Prints one line per model and a summary; exits 1 if any per-token difference exceeds --tol.
"""

import argparse
import copy
import json
import math
import random
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    LlamaConfig,
    LlamaForCausalLM,
    MistralConfig,
    MistralForCausalLM,
    PreTrainedTokenizerFast,
    Qwen2Config,
    Qwen2ForCausalLM,
)

REPO = Path(__file__).resolve().parent.parent
TOKENIZER = REPO / "cdr-models/tests/fixtures/llama_gqa/tokenizer.json"
TEMPLATES = REPO / ".cache/assets/templates"
CDR = REPO / "target/debug/cdr"

ROWS = [
    {"id": "r1", "prompt": "What is the capital of France?",
     "chosen": "The capital of France is Paris.", "rejected": "It is Lyon, I think."},
    {"id": "r2", "prompt": [{"role": "system", "content": "Answer briefly."},
                            {"role": "user", "content": "def add(a, b): what does it return?"}],
     "chosen": "It returns a + b.", "rejected": "   It prints the sum\nof a and b."},
    {"id": "r3", "prompt": [{"role": "user", "content": "Write a loop in Python."},
                            {"role": "assistant", "content": "for i in range(3):\n    print(i)"},
                            {"role": "user", "content": "Now count down instead, from three to one, please."}],
     "chosen": "for i in range(3, 0, -1):\n    print(i)\n",
     "rejected": "while True:\n    pass"},
]


def draw_config(rng: random.Random, vocab: int):
    arch = rng.choice(["llama", "llama", "mistral", "qwen2"])
    heads = rng.choice([2, 4, 6, 8])
    kv = rng.choice([d for d in (1, 2, heads) if heads % d == 0])
    head_dim = rng.choice([8, 16, 32])
    explicit_head_dim = rng.random() < 0.4
    # transformers requires hidden % heads == 0 even with an explicit head_dim.
    hidden = head_dim * heads if not explicit_head_dim else heads * rng.choice([4, 12, 20])
    common = dict(
        vocab_size=vocab,
        hidden_size=hidden,
        intermediate_size=rng.choice([48, 64, 96]),
        num_hidden_layers=rng.choice([1, 2, 3]),
        num_attention_heads=heads,
        num_key_value_heads=kv,
        rms_norm_eps=rng.choice([1e-5, 1e-6]),
        tie_word_embeddings=rng.random() < 0.5,
        # 64 lets dynamic NTK scaling act on the longer rows.
        max_position_embeddings=rng.choice([64, 256]),
        bos_token_id=1,
        eos_token_id=2,
    )
    if explicit_head_dim:
        common["head_dim"] = head_dim
    theta = rng.choice([10000.0, 500000.0, 1000.0])
    scaling = None
    if arch == "llama":
        half = head_dim // 2
        scaling = rng.choice([
            None, None, {"rope_type": "linear", "factor": 2.0},
            {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
             "high_freq_factor": 4.0, "original_max_position_embeddings": 32},
            {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32},
            {"rope_type": "dynamic", "factor": 2.0},
            {"rope_type": "longrope", "original_max_position_embeddings": 32,
             "short_factor": [1.0 + 0.1 * i for i in range(half)],
             "long_factor": [1.0 + 0.8 * i for i in range(half)]},
        ])
        cfg = LlamaConfig(**common, attention_bias=rng.random() < 0.3, mlp_bias=rng.random() < 0.3)
        cls = LlamaForCausalLM
    elif arch == "mistral":
        cfg = MistralConfig(**common, sliding_window=rng.choice([8, 16, None, 4096]))
        cls = MistralForCausalLM
    else:
        cfg = Qwen2Config(**common, use_sliding_window=rng.random() < 0.5, sliding_window=8,
                          max_window_layers=rng.choice([0, 1, 2]))
        cls = Qwen2ForCausalLM
    params = {"rope_type": "default", "rope_theta": theta}
    if scaling:
        params.update(scaling)
    cfg.rope_parameters = params
    dtype = rng.choice([torch.float32, torch.bfloat16, torch.float16])
    return arch, cfg, cls, dtype


def reinit(model, seed):
    # Spread-out log-probs (the default 0.02 init gives near-uniform distributions).
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=g))
            elif name.endswith("bias"):
                p.copy_(0.3 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(torch.randn(p.shape, generator=g) / math.sqrt(p.shape[-1]) * 1.5)


def usable_templates():
    """Published templates that render the sweep's rows in transformers (some refuse system turns)."""
    out = []
    for path in sorted(TEMPLATES.glob("*.jinja")):
        out.append((path.stem, path.read_text(encoding="utf-8")))
    return out


def messages_of(row):
    p = row["prompt"]
    return [{"role": "user", "content": p}] if isinstance(p, str) else p


def scored_text(tok, messages, response):
    """(full text, prompt length in characters), or None if the response cannot be located."""
    prompt = tok.apply_chat_template(copy.deepcopy(messages), add_generation_prompt=True, tokenize=False)
    finished = tok.apply_chat_template(copy.deepcopy(messages) + [{"role": "assistant", "content": response}],
                                       add_generation_prompt=False, tokenize=False)
    if finished.startswith(prompt):
        return finished, len(prompt)
    parted = next((i for i, (a, b) in enumerate(zip(prompt, finished)) if a != b), min(len(prompt), len(finished)))
    tail = finished[parted:]
    at = tail.rfind(response)
    if at < 0 and response.strip():
        at = tail.rfind(response.strip())
    if at < 0:
        return None
    return prompt + tail[at:], len(prompt)


def reference(tok, model, full, prompt_len):
    enc = tok(full, add_special_tokens=False, return_offsets_mapping=True)
    ids, offsets = enc["input_ids"], enc["offset_mapping"]
    k = next(i for i, (_s, e) in enumerate(offsets) if e > prompt_len)
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids]), use_cache=False).logits[0]
    lp = torch.log_softmax(logits.float(), dim=-1)
    return ids, k, [float(lp[t - 1, ids[t]]) for t in range(k, len(ids))]


def run_cdr(model_dir: Path, rows_path: Path, out_path: Path):
    cmd = [str(CDR), "logprobs", "--model", str(model_dir), "--input", str(rows_path), "--output",
           str(out_path), "--per-token", "--no-cache", "--fresh", "-q",
           # The reference does not truncate (some published templates write 3,000-token system
           # prompts, past the default limit of 2,048 prompt tokens).
           "--max-prompt-tokens", "1000000", "--max-response-tokens", "1000000"]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        return res.stderr.strip().splitlines()[-1] if res.stderr.strip() else f"exit {res.returncode}"
    return [json.loads(line) for line in out_path.read_text().splitlines()]


def per_token_lists(out_row):
    """cdr's per-token log-probs of each response (chosen, then rejected)."""
    return [r["token_logprobs"] for r in out_row["responses"]]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tol", type=float, default=1e-4)
    ap.add_argument("--keep", type=Path, help="keep the drawn model directories here")
    args = ap.parse_args()
    if not CDR.is_file():
        sys.exit(f"{CDR} missing: cargo build -p cdr-cli")
    templates = usable_templates()
    if not templates:
        sys.exit(f"no templates in {TEMPLATES}: tools/fetch_assets.sh templates")
    rng = random.Random(args.seed)
    base_tok = PreTrainedTokenizerFast(tokenizer_file=str(TOKENIZER), bos_token="<s>", eos_token="</s>")
    work = Path(tempfile.mkdtemp(prefix="cdr-sweep-"))
    worst_all, failures, skipped = 0.0, [], 0
    for i in range(args.models):
        arch, cfg, cls, dtype = draw_config(rng, len(base_tok))
        torch.manual_seed(args.seed * 1000 + i)
        model = cls(cfg)
        reinit(model, args.seed * 1000 + i)
        model = model.to(dtype)
        # A template that renders every row in transformers, with a locatable response.
        tok = copy.deepcopy(base_tok)
        texts = None
        for t in rng.sample(range(len(templates)), len(templates)):
            name, source = templates[t]
            tok.chat_template = source
            try:
                texts = [scored_text(tok, messages_of(row), row[key]) for row in ROWS
                         for key in ("chosen", "rejected")]
            except Exception:
                texts = None
            if texts and all(texts):
                break
            texts = None
        if texts is None:
            skipped += 1
            continue
        folder = work / f"m{i}"
        model.save_pretrained(folder)
        tok.save_pretrained(folder)
        # The reference is the saved checkpoint as a user loads it, computed in f32 (loading
        # also rebuilds the rotary tables in f32, which a model cast to bf16 in memory lost).
        ref_model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
        # Tokenized as a user's AutoTokenizer does (for qwen2 that is transformers' own
        # Qwen2Tokenizer, not the tokenizer.json pipeline as written).
        ref_tok = AutoTokenizer.from_pretrained(folder)
        texts = [scored_text(ref_tok, messages_of(row), row[key]) for row in ROWS
                 for key in ("chosen", "rejected")]
        refs = [reference(ref_tok, ref_model, full, plen) for full, plen in texts]
        rows_path = folder / "rows.jsonl"
        rows_path.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
        got = run_cdr(folder, rows_path, folder / "out.jsonl")
        desc = (f"{arch:7} L{cfg.num_hidden_layers} h{cfg.hidden_size} {cfg.num_attention_heads}/"
                f"{cfg.num_key_value_heads}x{getattr(cfg, 'head_dim', None) or cfg.hidden_size // cfg.num_attention_heads}"
                f" tie={int(cfg.tie_word_embeddings)} {str(dtype)[6:]:8} rope={cfg.rope_parameters.get('rope_type')}"
                f" sw={getattr(cfg, 'sliding_window', None)}"
                f"{'/' + ''.join(t[0] for t in cfg.layer_types) if arch == 'qwen2' else ''} template={name}")
        if isinstance(got, str):
            failures.append(f"{desc}: cdr failed: {got}")
            print(f"FAIL {desc}: {got}")
            continue
        worst = 0.0
        for out_row, k in zip(got, range(len(ROWS))):
            lists = per_token_lists(out_row)
            for j, lps in enumerate(lists):
                ids, start, want = refs[2 * k + j]
                if len(lps) != len(want):
                    failures.append(f"{desc}: row {k} side {j}: {len(lps)} response tokens vs {len(want)}")
                    worst = math.inf
                    continue
                worst = max(worst, max((abs(a - b) for a, b in zip(lps, want)), default=0.0))
        worst_all = max(worst_all, worst)
        status = "ok  " if worst <= args.tol else "FAIL"
        if worst > args.tol and worst != math.inf:
            failures.append(f"{desc}: max |diff| {worst:.2e}")
        print(f"{status} {desc}: max |diff| {worst:.2e}")
        if args.keep:
            shutil.copytree(folder, args.keep / folder.name, dirs_exist_ok=True)
    shutil.rmtree(work, ignore_errors=True)
    print(f"\n{args.models - skipped} models compared ({skipped} without a usable template), "
          f"worst per-token |diff| {worst_all:.2e}, {len(failures)} failures")
    for f in failures:
        print("  " + f)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
