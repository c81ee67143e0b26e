"""Shared fixtures: the committed tiny random-weight checkpoints and the `cdr` binary.

All fixture models share one tokenizer (cdr-models/tests/fixtures/*/tokenizer.json are
byte-identical), so any two make a valid strong/weak pair.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "cdr-models" / "tests" / "fixtures"
STRONG = FIXTURES / "llama_gqa"
WEAK = FIXTURES / "llama_sharded"
POLICY = FIXTURES / "qwen2_tiny"


def _require(path: Path) -> Path:
    # A missing fixture is a failure, never a skip.
    assert path.exists(), f"missing test input {path}"
    return path


@pytest.fixture(scope="session")
def pair():
    import cdr

    return cdr.DensityRatio(_require(STRONG), _require(WEAK))


@pytest.fixture(scope="session")
def cdr_bin() -> Path:
    """The `cdr` binary: $CDR_BIN, else target/debug/cdr of $CARGO_TARGET_DIR or the repo."""
    candidates = []
    if os.environ.get("CDR_BIN"):
        candidates.append(Path(os.environ["CDR_BIN"]))
    target = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
    candidates.append(target / "debug" / "cdr")
    for c in candidates:
        if c.is_file():
            return c
    raise AssertionError(
        f"no cdr binary at {[str(c) for c in candidates]}: run `cargo build -p cdr-cli` "
        "(tools/python_tests.sh does) or set CDR_BIN"
    )


def run_cdr(cdr_bin: Path, *args: str) -> subprocess.CompletedProcess:
    out = subprocess.run([str(cdr_bin), *args], capture_output=True, text=True)
    assert out.returncode == 0, f"cdr {' '.join(args)} failed:\n{out.stderr}"
    return out


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def tokenizer_swapped_copy(src: Path, dst: Path) -> Path:
    """A copy of model `src` whose tokenizer swaps the ids of two frequent tokens ("e", "t")."""
    shutil.copytree(src, dst)
    path = dst / "tokenizer.json"
    tok = json.loads(path.read_text())
    vocab = tok["model"]["vocab"]
    vocab["e"], vocab["t"] = vocab["t"], vocab["e"]
    path.write_text(json.dumps(tok))
    return dst
