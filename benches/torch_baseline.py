"""The Python way to score a preference workload: transformers + PyTorch.

Loads the same random-weight checkpoint and the same token ids as `score_workload`, and scores them
as a typical annotation script does: sequences in dataset order, `--batch` at a time, right-padded to
the longest in the batch with an attention mask, SDPA attention, one forward, log-softmax, and the
response tokens' log-probs summed. Prints one JSON line: seconds, per-sequence sums, peak memory,
the matmul ceiling measured with torch.

    python benches/torch_baseline.py --checkpoint .cache/bench/smollm2-135m \
        --workload .cache/bench/workloads/smollm2-135m-pairwise-8-7.json --dtype f32 --device cpu
"""
import argparse
import json
import resource
import time

import torch
from transformers import AutoModelForCausalLM


def ceiling(device, dtype):
    n = 8192 if device == "cuda" else 2048
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    a @ b
    sync(device)
    t = time.perf_counter()
    for _ in range(3):
        a @ b
    sync(device)
    return 3 * 2 * n**3 / (time.perf_counter() - t) / 1e12


def sync(device):
    if device == "cuda":
        torch.cuda.synchronize()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--workload", required=True)
    p.add_argument("--dtype", default="f32", choices=["f32", "bf16", "f16"])
    p.add_argument("--device", default="cpu")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    p.add_argument(
        "--lean",
        action="store_true",
        help="a tuned script instead of a typical one: project onto the vocabulary only at response "
        "positions (hidden states from model.model, then lm_head), as cdr does",
    )
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    dtype = {"f32": torch.float32, "bf16": torch.bfloat16, "f16": torch.float16}[args.dtype]
    model = AutoModelForCausalLM.from_pretrained(
        args.checkpoint, dtype=dtype, attn_implementation="sdpa"
    ).to(args.device).eval()

    workload = json.load(open(args.workload))
    seqs = [(g["prompt"] + r, len(g["prompt"])) for g in workload["groups"] for r in g["responses"]]

    @torch.inference_mode()
    def score(batch):
        width = max(len(ids) for ids, _ in batch)
        ids = torch.zeros(len(batch), width, dtype=torch.long)
        mask = torch.zeros(len(batch), width, dtype=torch.long)
        for i, (s, _) in enumerate(batch):
            ids[i, : len(s)] = torch.tensor(s)
            mask[i, : len(s)] = 1
        ids, mask = ids.to(args.device), mask.to(args.device)
        if args.lean:
            hidden = model.model(input_ids=ids, attention_mask=mask).last_hidden_state
            sums = []
            for i, (s, start) in enumerate(batch):
                logits = model.lm_head(hidden[i, start - 1 : len(s) - 1]).float()
                lp = torch.log_softmax(logits, -1).gather(-1, ids[i, start : len(s), None])
                sums.append(lp.sum().item())
            return sums
        logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1].float()
        lp = torch.log_softmax(logits, -1).gather(-1, ids[:, 1:, None])[..., 0]
        sums = []
        for i, (s, start) in enumerate(batch):
            sums.append(lp[i, start - 1 : len(s) - 1].sum().item())
        return sums

    batches = [seqs[i : i + args.batch] for i in range(0, len(seqs), args.batch)]
    # Untimed warm-up, as the Rust side does: every batch on a GPU (allocator growth, kernel
    # selection per shape), one on the CPU.
    for b in (batches if args.device == "cuda" else batches[:1]):
        score(b)
    sync(args.device)
    if args.device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    t = time.perf_counter()
    sums = []
    for b in batches:
        sums.extend(score(b))
    sync(args.device)
    seconds = time.perf_counter() - t
    if args.device == "cuda":
        peak = torch.cuda.max_memory_allocated() / 2**30
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux
    print(json.dumps(dict(
        seconds=seconds,
        sums=sums,
        peak_mem_gb=peak,
        ceiling_tflops=ceiling(args.device, dtype),
        torch=torch.__version__,
        threads=torch.get_num_threads(),
    )))


if __name__ == "__main__":
    main()
