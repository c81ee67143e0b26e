#!/usr/bin/env python3
"""bf16 accuracy of cdr's rewards on a real pair, against transformers' own bf16.

For N preference rows, cdr scores every response with the strong and the weak model in f32 and in
bf16 (`cdr logprobs --token-ids`), and transformers scores the very same token ids with the same
checkpoints in f32 and bf16. The reward of a response is strong log-prob minus weak log-prob (the
density ratio, METHOD.md). The table compares |bf16 - f32| of the rewards for both engines and counts
pairwise decisions (reward(chosen) > reward(rejected)) that bf16 flips.

    python tools/bf16_accuracy.py --cdr target/release/cdr \
        --strong .cache/assets/qwen2.5-coder-1.5b-instruct.gguf \
        --weak .cache/assets/qwen2.5-coder-0.5b-instruct.gguf \
        --input ../shared/data/prefsets/hep.jsonl --rows 64

Needs torch, transformers and (for .gguf checkpoints) gguf and accelerate. Rows are taken evenly across the file so
every subset is represented; the subset file goes to --work, never into the repository.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import torch


def pick_rows(path, n, dest):
    with open(path) as f:
        rows = [line for line in f if line.strip()]
    if len(rows) < n:
        sys.exit(f"{path}: {len(rows)} rows, fewer than --rows {n}")
    step = len(rows) / n
    picked = [rows[int(i * step)] for i in range(n)]
    with open(dest, "w") as f:
        f.writelines(picked)
    return [json.loads(r) for r in picked]


def cdr_logprobs(cdr, model, dtype, rows_file, out, extra, reuse):
    if reuse and os.path.exists(out):
        print(f"reusing {out}", file=sys.stderr)
    else:
        if os.path.exists(out):
            os.remove(out)
        cmd = [cdr, "logprobs", "--model", model, "--dtype", dtype, "--input", rows_file,
               "--no-cache", "--token-ids", "--output", out, *extra]
        print("+", " ".join(cmd), file=sys.stderr, flush=True)
        subprocess.run(cmd, check=True)
    with open(out) as f:
        return [json.loads(line) for line in f]


def load_hf(path, dtype):
    from transformers import AutoModelForCausalLM

    if path.endswith(".gguf"):
        model = AutoModelForCausalLM.from_pretrained(
            os.path.dirname(os.path.abspath(path)), gguf_file=os.path.basename(path),
            dtype=torch.float32)
        model = model.to(dtype)
    else:
        model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype)
    return model.eval()


@torch.inference_mode()
def hf_logprobs(model, sequences, label):
    """Sum of response-token log-probs for each (prompt_ids, response_ids)."""
    out = []
    start = time.time()
    for i, (prompt, response) in enumerate(sequences):
        ids = torch.tensor([prompt + response])
        logits = model(ids).logits[0, len(prompt) - 1:-1].float()
        lp = torch.log_softmax(logits, dim=-1)
        target = torch.tensor(response)
        out.append(lp.gather(1, target[:, None]).sum().item())
        if (i + 1) % 16 == 0:
            print(f"  {label}: {i + 1}/{len(sequences)} ({time.time() - start:.0f} s)",
                  file=sys.stderr, flush=True)
    return out


def responses(rows):
    """(prompt_ids, response_ids) and log-prob of every response, rows in order."""
    seqs, sums = [], []
    for r in rows:
        for resp in r["responses"]:
            seqs.append((resp["prompt_ids"], resp["response_ids"]))
            sums.append(resp["logprob"])
    return seqs, sums


def summarize(name, rewards, ref):
    diffs = [abs(a - b) for a, b in zip(rewards, ref)]
    return name, statistics.mean(diffs), max(diffs)


def flips(rewards, ref):
    n = 0
    for i in range(0, len(ref), 2):
        if (rewards[i] > rewards[i + 1]) != (ref[i] > ref[i + 1]):
            n += 1
    return n


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cdr", required=True, help="the cdr binary")
    ap.add_argument("--strong", required=True)
    ap.add_argument("--weak", required=True)
    ap.add_argument("--input", required=True, help="pairwise rows (.jsonl)")
    ap.add_argument("--rows", type=int, default=64)
    ap.add_argument("--work", default=".cache/bf16-accuracy")
    ap.add_argument("--json", help="also write the numbers here")
    ap.add_argument("--reuse", action="store_true",
                    help="keep cdr outputs already in --work (same rows, same binary)")
    ap.add_argument("cdr_args", nargs="*", help="extra cdr logprobs arguments (after --)")
    args = ap.parse_args()
    torch.set_num_threads(os.cpu_count())
    os.makedirs(args.work, exist_ok=True)
    rows_file = os.path.join(args.work, "rows.jsonl")
    pick_rows(args.input, args.rows, rows_file)

    sums = {}  # (engine, model, dtype) -> per-response log-prob sums
    ids = {}
    for role, model in (("strong", args.strong), ("weak", args.weak)):
        for dtype in ("f32", "bf16"):
            out = os.path.join(args.work, f"cdr-{role}-{dtype}.jsonl")
            rows = cdr_logprobs(args.cdr, model, dtype, rows_file, out, args.cdr_args,
                                args.reuse)
            if any(len(r["responses"]) != 2 for r in rows):
                sys.exit("every row must be pairwise (chosen, rejected)")
            seqs, s = responses(rows)
            sums[("cdr", role, dtype)] = s
            if ids.setdefault(role, seqs) != seqs:
                sys.exit(f"cdr {role}: token ids differ between f32 and bf16")
    for role, model in (("strong", args.strong), ("weak", args.weak)):
        for dtype, torch_dtype in (("f32", torch.float32), ("bf16", torch.bfloat16)):
            print(f"transformers {role} {dtype}", file=sys.stderr, flush=True)
            hf = load_hf(model, torch_dtype)
            sums[("hf", role, dtype)] = hf_logprobs(hf, ids[role], f"{role} {dtype}")
            del hf

    def reward(engine, dtype):
        return [a - b for a, b in zip(sums[(engine, "strong", dtype)],
                                      sums[(engine, "weak", dtype)])]

    r = {(e, d): reward(e, d) for e in ("cdr", "hf") for d in ("f32", "bf16")}
    lines = [
        summarize("cdr bf16 vs cdr f32", r[("cdr", "bf16")], r[("cdr", "f32")]),
        summarize("transformers bf16 vs transformers f32", r[("hf", "bf16")], r[("hf", "f32")]),
        summarize("cdr f32 vs transformers f32", r[("cdr", "f32")], r[("hf", "f32")]),
        summarize("cdr bf16 vs transformers f32", r[("cdr", "bf16")], r[("hf", "f32")]),
    ]
    n = len(r[("cdr", "f32")]) // 2
    print(f"\n{n} rows, {2 * n} responses; reward = strong - weak log-prob sum (nats)\n")
    print(f"| {'comparison':<40} | mean abs diff | max abs diff |")
    print(f"|{'-' * 42}|--------------:|-------------:|")
    for name, mean, mx in lines:
        print(f"| {name:<40} | {mean:13.4f} | {mx:12.4f} |")
    ratio_mean = lines[0][1] / lines[1][1]
    ratio_max = lines[0][2] / lines[1][2]
    print(f"\ncdr's bf16 error / transformers' bf16 error: {ratio_mean:.2f}x mean, "
          f"{ratio_max:.2f}x max")
    acc = {k: sum(v[i] > v[i + 1] for i in range(0, len(v), 2)) / n for k, v in r.items()}
    print(f"pairwise decisions flipped by bf16 (vs the same engine's f32): "
          f"cdr {flips(r[('cdr', 'bf16')], r[('cdr', 'f32')])} of {n}, "
          f"transformers {flips(r[('hf', 'bf16')], r[('hf', 'f32')])} of {n}")
    print("accuracy (chosen > rejected): " + ", ".join(
        f"{e} {d} {acc[(e, d)]:.3f}" for (e, d) in r))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"rows": n, "comparisons": lines, "ratio_mean": ratio_mean,
                       "ratio_max": ratio_max, "accuracy": {f"{e} {d}": v for (e, d), v
                                                           in acc.items()}}, f, indent=1)


if __name__ == "__main__":
    main()
