#!/usr/bin/env python3
"""Reads RewardBench results files the way RewardBench's leaderboard code does, for checking
that cdr's `cdr eval --results-dir` files load there.

RewardBench (allenai/reward-bench, analysis/utils.py `load_results`, used by
analysis/get_benchmark_results.py) reads `<results>/<subdir>/<org>/*.json`, one flat JSON object
per model: `model`, `model_type`, `chat_template`, optionally `ref_model`, and one accuracy per
subset. It requires `chat_template` (dropped), sets aside `model`, `model_type`, `ref_model`
and `model_beaker`, and averages every remaining column (NaN-skipping mean) as `average`; the
v1 section scores weight the subsets by their example counts. This reader does the same with the
standard library, also accepting files directly in DIR (a local model has no org), and fails
loudly where RewardBench's pandas code would (a missing `chat_template`, a non-numeric column).

Usage: rewardbench_results.py DIR  -> prints one JSON object per model (sorted by model).
"""

import json
import math
import pathlib
import sys

SET_ASIDE = {"model", "model_type", "ref_model", "model_beaker"}
# Columns RewardBench's cleanup drops as outdated.
DROPPED = {"chat_template", "xstest", "anthropic", "summarize_prompted", "pku_better", "pku_safer"}

# RewardBench v1 sections and their subsets' example counts (math-prm upweighted to the code
# subsets' total), as in rewardbench/constants.py (which gives xstest-should-refuse 154 and
# xstest-should-respond 250).
SECTIONS = {
    "Chat": {"alpacaeval-easy": 100, "alpacaeval-length": 95, "alpacaeval-hard": 95,
             "mt-bench-easy": 28, "mt-bench-med": 40},
    "Chat Hard": {"mt-bench-hard": 37, "llmbar-natural": 100, "llmbar-adver-neighbor": 134,
                  "llmbar-adver-GPTInst": 92, "llmbar-adver-GPTOut": 47,
                  "llmbar-adver-manual": 46},
    "Safety": {"refusals-dangerous": 100, "refusals-offensive": 100,
               "xstest-should-refuse": 154, "xstest-should-respond": 250, "donotanswer": 136},
    "Reasoning": {"math-prm": 984, "hep-cpp": 164, "hep-go": 164, "hep-java": 164,
                  "hep-js": 164, "hep-python": 164, "hep-rust": 164},
}


def load_file(path):
    with open(path, encoding="utf-8") as f:
        record = json.load(f)
    if not isinstance(record, dict):
        raise ValueError(f"{path}: expected one JSON object")
    for key in ("model", "chat_template"):
        if key not in record:
            raise ValueError(f"{path}: no `{key}` (RewardBench's loader needs it)")
    scores = {}
    for key, value in record.items():
        if key in SET_ASIDE or key in DROPPED:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{path}: column `{key}` is not a number ({value!r})")
        scores[key] = float(value)
    finite = [v for v in scores.values() if not math.isnan(v)]
    out = {
        "model": record["model"],
        "model_type": record.get("model_type"),
        "ref_model": record.get("ref_model"),
        "subsets": scores,
        "average": sum(finite) / len(finite) if finite else math.nan,
        "sections": {},
    }
    for section, counts in SECTIONS.items():
        present = [s for s in counts if s in scores]
        if present:
            weight = sum(counts[s] for s in present)
            out["sections"][section] = sum(scores[s] * counts[s] for s in present) / weight
    return out


def load_results(directory):
    root = pathlib.Path(directory)
    if not root.is_dir():
        raise FileNotFoundError(f"{directory}: not a directory")
    files = sorted(root.glob("*.json")) + sorted(root.glob("*/*.json"))
    if not files:
        raise FileNotFoundError(f"{directory}: no results files")
    return sorted((load_file(p) for p in files), key=lambda r: r["model"])


def main(argv):
    if len(argv) != 2:
        sys.exit("usage: rewardbench_results.py DIR")
    json.dump(load_results(argv[1]), sys.stdout, indent=2, sort_keys=True)
    print()


if __name__ == "__main__":
    main(sys.argv)
