"""A PEFT LoRA adapter over its base as the strong/weak pair, from Python: the same rewards as the
merged checkpoint over the base (fixtures of tools/make_lora_fixtures.py)."""

from __future__ import annotations

import shutil

import pytest

import cdr
from conftest import FIXTURES
from rows import PAIRWISE

LORA = FIXTURES / "lora"


def rewards(pair):
    out = []
    for row in pair.score_rows(PAIRWISE):
        out += [row["chosen"]["reward"], row["rejected"]["reward"]]
    return out


def test_adapter_pair_scores_as_the_merged_checkpoint():
    base = LORA / "base_qwen2"
    adapter = cdr.DensityRatio(LORA / "rslora" / "adapter", base)
    merged = cdr.DensityRatio(LORA / "rslora" / "merged", base)
    a, m = rewards(adapter), rewards(merged)
    assert len(a) == 2 * len(PAIRWISE) > 0
    assert a == pytest.approx(m, abs=1e-4)
    assert max(abs(x) for x in a) > 0.5


def test_moved_adapter_needs_its_base(tmp_path):
    moved = tmp_path / "adapter"
    shutil.copytree(LORA / "attn_qkvo" / "adapter", moved)
    base = LORA / "base_llama"
    with pytest.raises(cdr.CdrError, match="adapter-base"):
        cdr.DensityRatio(moved, base).score_rows(PAIRWISE[:1])
    pair = cdr.DensityRatio(moved, base, adapter_base=base)
    assert len(pair.score_rows(PAIRWISE[:1])) == 1
