#!/usr/bin/env python3
"""Decode throughput: `cdr generate` against transformers' `generate` on the same model, prompts
and settings, in one run (numbers for docs/performance.md, "Decoding"). Run it on an otherwise idle
machine: the load average before and after is recorded, since other processes slow both sides
(torch's OpenMP threads, which spin while waiting, far more than cdr's).

SmolLM2-135M-Instruct (the Q4_1 GGUF of `tools/fetch_assets.sh smollm2`, which both sides
dequantize to float32) answers PROMPTS with their chat template, --threads (default 2) threads
each:

  greedy   one response per prompt, greedy, up to --max-new-tokens (end-of-sequence stops it);
           also checks that both sides write the same texts.
  sampled  N = 4 responses per prompt (temperature 0.7, top-p 1.0), which cdr runs as one batch
           sharing the prompt's prefill, transformers as num_return_sequences=4.

transformers runs both ways: prompt by prompt (a typical script) and all prompts in one
left-padded `generate` call (batched, like cdr, which decodes up to --batch-rows sequences
together).

Throughput = new tokens (up to and including the end-of-sequence token) / wall time of the
generation calls (prefill included, model loading excluded). cdr reports its own count and time
(its summary line), measured the same way.

    python3 -m venv /tmp/fixtures-venv
    /tmp/fixtures-venv/bin/pip install torch transformers gguf accelerate
    tools/fetch_assets.sh smollm2
    cargo build --release -p cdr-cli
    /tmp/fixtures-venv/bin/python tools/decode_bench.py [--max-new-tokens 128]
"""

import argparse
import json
import os
import re
import subprocess
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
import transformers  # noqa: E402
from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
ASSETS = REPO / ".cache" / "assets"
GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
CDR = REPO / "target" / "release" / "cdr"

PROMPTS = [
    "What is the capital of France?",
    "Write a Python function that reverses a string.",
    "Explain photosynthesis to a ten-year-old.",
    "Give me three tips for a job interview.",
    "What is 17 times 23? Show your work.",
    "Summarize the plot of Romeo and Juliet in a few sentences.",
    "How do I make a cup of green tea?",
    "List the planets of the solar system in order.",
]


def hf_run(model, tok, n, sample, max_new, eos):
    tokens, secs, texts = 0, 0.0, []
    for i, prompt in enumerate(PROMPTS):
        text = tok.apply_chat_template(
            [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
        )
        ids = torch.tensor([tok(text, add_special_tokens=False)["input_ids"]])
        settings = dict(max_new_tokens=max_new, eos_token_id=eos, pad_token_id=eos[0])
        if sample:
            torch.manual_seed(i)
            settings.update(do_sample=True, temperature=0.7, top_p=1.0, top_k=0,
                            num_return_sequences=n)
        else:
            settings.update(do_sample=False)
        start = time.perf_counter()
        with torch.no_grad():
            out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), **settings)
        secs += time.perf_counter() - start
        for row in out[:, ids.shape[1]:].tolist():
            new = []
            for t in row:
                new.append(t)
                if t in eos:
                    break
            tokens += len(new)
            texts.append(tok.decode([t for t in new if t not in eos], skip_special_tokens=True))
    return tokens, secs, texts


def hf_run_batched(model, tok, n, sample, max_new, eos):
    """All prompts in one left-padded `generate` call (what a batching transformers user writes),
    N sequences each; the fair comparison for cdr, which also decodes the prompts together."""
    texts_in = [
        tok.apply_chat_template([{"role": "user", "content": p}], tokenize=False,
                                add_generation_prompt=True)
        for p in PROMPTS
    ]
    tok.padding_side = "left"
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    batch = tok(texts_in, add_special_tokens=False, return_tensors="pt", padding=True)
    settings = dict(max_new_tokens=max_new, eos_token_id=eos, pad_token_id=tok.pad_token_id)
    if sample:
        torch.manual_seed(0)
        settings.update(do_sample=True, temperature=0.7, top_p=1.0, top_k=0,
                        num_return_sequences=n)
    else:
        settings.update(do_sample=False)
    start = time.perf_counter()
    with torch.no_grad():
        out = model.generate(**batch, **settings)
    secs = time.perf_counter() - start
    tokens = 0
    for row in out[:, batch["input_ids"].shape[1]:].tolist():
        for t in row:
            tokens += 1
            if t in eos:
                break
    return tokens, secs


def cdr_run(folder, n, sample, max_new, threads):
    prompts = folder / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"id": f"p{i}", "prompt": p}) + "\n"
                               for i, p in enumerate(PROMPTS)))
    out = folder / f"out-{n}-{sample}.jsonl"
    args = [str(CDR), "generate", "--policy", str(ASSETS / GGUF), "--n", str(n),
            "--temperature", "0.7" if sample else "0", "--max-new-tokens", str(max_new),
            "--input", str(prompts), "--output", str(out), "--fresh", "--quiet"]
    env = dict(os.environ, RAYON_NUM_THREADS=str(threads))
    proc = subprocess.run(args, capture_output=True, text=True, env=env, check=True)
    rate = float(re.search(r"([0-9.]+) new tokens/s", proc.stderr).group(1))
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    tokens = sum(sum(r["response_tokens"]) for r in rows)
    return rate, tokens, [t for r in rows for t in r["responses"]]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    tok = AutoTokenizer.from_pretrained(ASSETS, gguf_file=GGUF)
    model = AutoModelForCausalLM.from_pretrained(ASSETS, gguf_file=GGUF, dtype=torch.float32)
    model.eval()
    eos = model.generation_config.eos_token_id
    eos = list(eos) if isinstance(eos, (list, tuple)) else [eos]
    template_eos = tok.convert_tokens_to_ids(tok.eos_token)
    if template_eos not in eos:
        eos.append(template_eos)
    # Warm-up (first-call allocations, thread pools) on both sides.
    with torch.no_grad():
        model.generate(input_ids=torch.tensor([[1, 2, 3]]), max_new_tokens=4, do_sample=False,
                       pad_token_id=eos[0])
    results = {"transformers_version": transformers.__version__,
               "torch_version": torch.__version__, "threads": args.threads,
               "load_average_before": os.getloadavg()[0],
               "max_new_tokens": args.max_new_tokens, "prompts": len(PROMPTS)}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        cdr_run(folder, 1, False, 8, args.threads)
        for name, n, sample in [("greedy", 1, False), ("sampled_n4", 4, True)]:
            hf_tokens, hf_secs, hf_texts = hf_run(model, tok, n, sample, args.max_new_tokens, eos)
            cdr_rate, cdr_tokens, cdr_texts = cdr_run(
                folder, n, sample, args.max_new_tokens, args.threads
            )
            hfb_tokens, hfb_secs = hf_run_batched(model, tok, n, sample, args.max_new_tokens, eos)
            entry = {
                "transformers_tokens": hf_tokens,
                "transformers_tok_s": round(hf_tokens / hf_secs, 1),
                "transformers_batched_tokens": hfb_tokens,
                "transformers_batched_tok_s": round(hfb_tokens / hfb_secs, 1),
                "cdr_tokens": cdr_tokens,
                "cdr_tok_s": cdr_rate,
                "cdr_vs_transformers": round(cdr_rate / (hf_tokens / hf_secs), 2),
                "cdr_vs_transformers_batched": round(cdr_rate / (hfb_tokens / hfb_secs), 2),
            }
            if not sample:
                same = sum(a == b for a, b in zip(hf_texts, cdr_texts))
                entry["same_text"] = f"{same}/{len(PROMPTS)}"
            results[name] = entry
            print(name, entry, flush=True)
    # Other processes on the machine slow both sides, torch's spinning OpenMP threads most.
    results["load_average_after"] = os.getloadavg()[0]
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
