#!/usr/bin/env python3
"""Held-out accuracy of an adapter pair, beside another pair, and the adapter pair's memory.

Scores the held-out half of HumanEvalPack (the rows `tools/train_dpo_lora.py` did not train on,
by the split.json it wrote next to the adapter) with

  * the adapter pair: strong = base + DPO LoRA adapter, weak = the base (one copy in memory);
  * a comparison pair (default: Qwen2.5-Coder 1.5B over 0.5B) on the same rows, or on every
    `--compare-every`-th held-out task of them (all six languages of each) when its strong model is
    too slow for all of them;

each without customization and with `--customize paper`, and writes a Markdown table. The held-out
rows are read in place and written only under --work (never committed). Then it measures the peak
RSS of the adapter pair against two full models (the base and a copy of its file, which cdr cannot
share), one `cdr score` process each.

    python tools/adapter_pair_eval.py --adapter examples/adapters/smollm2-hep-dpo \
        --data ../shared/data/prefsets/hep.jsonl --out docs/examples/smollm2-hep-dpo
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path


def run(cmd, log):
    print("+", " ".join(str(c) for c in cmd), file=sys.stderr, flush=True)
    t0 = time.time()
    p = subprocess.run([str(c) for c in cmd], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    log.write(f"$ {' '.join(str(c) for c in cmd)}\n{p.stderr}\n")
    log.flush()
    if p.returncode != 0:
        sys.exit(f"failed ({p.returncode}): {p.stderr[-2000:]}")
    return p, time.time() - t0


def accuracy(report_path):
    r = json.loads(Path(report_path).read_text())
    return r


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--adapter", required=True, type=Path)
    ap.add_argument("--data", required=True, type=Path)
    ap.add_argument("--out", required=True, type=Path, help="docs folder for the table and reports")
    ap.add_argument("--work", type=Path, default=Path(".cache/adapter-eval"))
    ap.add_argument("--cdr", default="target/release/cdr")
    ap.add_argument("--compare-strong", default=".cache/assets/qwen2.5-coder-1.5b-instruct.gguf")
    ap.add_argument("--compare-weak", default=".cache/assets/qwen2.5-coder-0.5b-instruct.gguf")
    ap.add_argument("--compare-every", type=int, default=3,
                    help="score the comparison pair on every Nth held-out task (1: all)")
    ap.add_argument("--parts", default="adapter,compare,memory",
                    help="which runs: adapter, compare, memory (results merge into --work)")
    args = ap.parse_args()

    split = json.loads((args.adapter / "split.json").read_text())
    heldout = set(split["heldout_ids"])
    args.work.mkdir(parents=True, exist_ok=True)
    args.out.mkdir(parents=True, exist_ok=True)
    log = open(args.work / "eval.log", "a")
    rows = [json.loads(l) for l in open(args.data, encoding="utf-8") if l.strip()]
    held = [r for r in rows if r["id"] in heldout]
    # Task index within its language, as the split counts it.
    seen, tasks = {}, []
    for r in rows:
        tasks.append(seen.get(r["subset"], 0))
        seen[r["subset"]] = seen.get(r["subset"], 0) + 1
    held_tasks = sorted({t for r, t in zip(rows, tasks) if r["id"] in heldout})
    sample_tasks = set(held_tasks[:: args.compare_every])
    sample = [r for r, t in zip(rows, tasks) if r["id"] in heldout and t in sample_tasks]
    files = {"heldout": args.work / "heldout.jsonl", "sample": args.work / "heldout-sample.jsonl"}
    for name, subset in [("heldout", held), ("sample", sample)]:
        with open(files[name], "w", encoding="utf-8") as f:
            for r in subset:
                f.write(json.dumps(r, ensure_ascii=False) + "\n")
    print(f"{len(held)} held-out rows, {len(sample)} in the comparison sample", file=sys.stderr)

    parts = set(args.parts.split(","))
    base = None
    if parts & {"adapter", "memory"}:
        cfg = json.loads((args.adapter / "adapter_config.json").read_text())
        base = Path(cfg["base_model_name_or_path"])
        base = (args.adapter / base).resolve() if not base.is_absolute() else base
    pairs = []
    if "adapter" in parts:
        pairs.append(("adapter", args.adapter, base))
    if "compare" in parts:
        pairs.append(("compare", Path(args.compare_strong), Path(args.compare_weak)))
    results_path = args.work / "results.json"
    results = json.loads(results_path.read_text()) if results_path.exists() else []
    results = [r for r in results if r["pair"] not in {p[0] for p in pairs}]
    for name, strong, weak in pairs:
        inputs = ["heldout", "sample"] if name == "adapter" else ["sample"]
        if name == "adapter" and args.compare_every == 1:
            inputs = ["heldout"]
        for which in inputs:
            for customize in ["none", "paper"]:
                tag = f"{name}-{which}-{customize}"
                report = args.work / f"{tag}.json"
                report_dir = args.out / f"report-{customize}" if (name, which) == ("adapter", "heldout") else None
                cmd = [args.cdr, "eval", "--strong", strong, "--weak", weak, "--input", files[which],
                       "--customize", customize, "--report", report, "--fresh"]
                if report_dir:
                    cmd += ["--report-dir", report_dir]
                p, secs = run(cmd, log)
                r = accuracy(report)
                peak = re.search(r"peak RSS ([0-9.]+) GiB", p.stderr)
                results.append({"pair": name, "rows": which, "customize": customize,
                                "strong": str(strong), "weak": str(weak),
                                "n": r["rows"], "accuracy": r["accuracy"],
                                "by_subset": r["results"].get("by_subset"),
                                "report": r, "seconds": round(secs, 1),
                                "peak_rss_gib": float(peak.group(1)) if peak else None})
                results_path.write_text(json.dumps(results, indent=1))

    memory_path = args.work / "memory.json"
    memory = json.loads(memory_path.read_text()) if memory_path.exists() else []
    if "memory" in parts:
        memory = []
        copy = args.work / ("copy-of-" + base.name)
        if not copy.exists():
            shutil.copyfile(base, copy) if base.is_file() else shutil.copytree(base, copy)
        for dtype in ["bf16", "f32"]:
            for label, strong in [("adapter over its base (one base in memory)", args.adapter),
                                  ("two full models (the base and a copy)", copy)]:
                out = args.work / f"mem-{dtype}-{'a' if strong == args.adapter else 'b'}.jsonl"
                out.unlink(missing_ok=True)
                p, secs = run([args.cdr, "score", "--strong", strong, "--weak", base, "--input",
                               files["sample"], "--output", out, "--dtype", dtype, "--no-cache"], log)
                peak = re.search(r"peak RSS ([0-9.]+) GiB", p.stderr)
                memory.append({"dtype": dtype, "pair": label, "seconds": round(secs, 1),
                               "peak_rss_gib": float(peak.group(1)) if peak else None})
                memory_path.write_text(json.dumps(memory, indent=1))
    summary = {"split": {k: split[k] for k in ("seed", "source", "train_tasks")},
               "results": [{k: v for k, v in r.items() if k != "report"} for r in results],
               "memory": memory}
    (args.out / "results.json").write_text(json.dumps(summary, indent=1) + "\n")
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
