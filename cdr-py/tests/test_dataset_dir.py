"""`cdr score --output DIR/` writes a dataset directory that `datasets.load_dataset(DIR)` loads:
one Parquet file per split under data/ and a card whose YAML lists the splits."""

from __future__ import annotations

# Imported, not importorskip'ed: without `datasets` (trl brings it) the test must fail.
import datasets
import pytest

from conftest import STRONG, WEAK, read_jsonl, run_cdr, write_jsonl
from rows import PAIRWISE

PAIR_ARGS = ["--strong", str(STRONG), "--weak", str(WEAK), "--dtype", "f32", "--no-cache", "--quiet"]


def test_dataset_dir_loads_with_datasets(cdr_bin, tmp_path):
    # Input: a directory with a train and a test file, read split by split as DIR:SPLIT.
    inp = tmp_path / "in"
    inp.mkdir()
    splits = {"train": PAIRWISE, "test": PAIRWISE[:2]}
    for split, rows in splits.items():
        write_jsonl(inp / f"{split}.jsonl", rows)
    out = tmp_path / "scored"
    for split in splits:
        run_cdr(cdr_bin, "score", *PAIR_ARGS, "--input", f"{inp}:{split}", "--output", f"{out}/")
        # The same rows scored into a plain file: what each split must hold.
        run_cdr(
            cdr_bin, "score", *PAIR_ARGS, "--input", f"{inp}:{split}",
            "--output", str(tmp_path / f"{split}.jsonl"),
        )

    loaded = datasets.load_dataset(str(out), cache_dir=str(tmp_path / "hf-cache"))
    assert sorted(loaded.keys()) == ["test", "train"]
    for split, rows in splits.items():
        want = read_jsonl(tmp_path / f"{split}.jsonl")
        got = loaded[split]
        assert got["id"] == [r["id"] for r in rows]
        assert got["reward_chosen"] == pytest.approx([r["reward_chosen"] for r in want], abs=1e-9)
        assert [c["n_response_tokens"] for c in got["chosen"]] == [
            r["chosen"]["n_response_tokens"] for r in want
        ]
