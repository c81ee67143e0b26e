"""Rust errors reach Python as exceptions carrying cdr's message."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import pytest

import cdr
from conftest import STRONG, WEAK, tokenizer_swapped_copy
from rows import PAIRWISE


def test_missing_model_is_file_not_found(tmp_path):
    missing = tmp_path / "no-such-model"
    with pytest.raises(FileNotFoundError, match="no-such-model.*is not a directory"):
        cdr.DensityRatio(STRONG, missing)
    with pytest.raises(FileNotFoundError, match="strong: .*no-such-model"):
        cdr.DensityRatio(missing, WEAK)
    with pytest.raises(FileNotFoundError, match="no-such-model"):
        cdr.logprobs(missing, PAIRWISE)


def test_missing_input_file_is_file_not_found(pair, tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.jsonl"):
        pair.eval(tmp_path / "nope.jsonl")


def test_bad_row_names_row_and_field(pair):
    rows = [PAIRWISE[0], {"id": "bad", "prompt": "q", "chosen": "a"}]
    with pytest.raises(cdr.CdrError, match=r"<rows>, index 1, field `rejected`"):
        pair.score_rows(rows)
    with pytest.raises(cdr.CdrError, match=r"index 0, field `prompt\[0\]\.role`"):
        pair.score_rows([{"prompt": [{"role": "wizard", "content": "hi"}], "responses": ["x"]}])


def test_skip_invalid_warns_and_keeps_the_rest(pair):
    rows = [PAIRWISE[0], {"id": "bad", "prompt": "q", "chosen": "a"}]
    with pytest.warns(UserWarning, match="field `rejected`"):
        out = pair.score_rows(rows, skip_invalid=True)
    assert [r["id"] for r in out] == ["p1"]
    with pytest.warns(UserWarning, match="empty response"):
        rewards = pair.score(["a", "b"], ["  ", "fine"], skip_invalid=True)
    assert rewards[0] is None and isinstance(rewards[1], float)


def test_empty_response_is_an_error_with_the_message(pair):
    with pytest.raises(cdr.CdrError, match="empty response"):
        pair.score(["a"], [""])


def test_tokenizer_mismatch_raises_unless_allowed(tmp_path):
    weak = tokenizer_swapped_copy(WEAK, tmp_path / "weak")
    mismatched = cdr.DensityRatio(STRONG, weak)
    with pytest.raises(cdr.CdrError, match="tokenizers disagree on the scored text") as err:
        mismatched.score(["The tea was sweet."], ["Yes, the best tea."])
    assert "row `row-0`" in str(err.value)
    allowed = cdr.DensityRatio(STRONG, weak, allow_tokenizer_mismatch=True)
    (reward,) = allowed.score(["The tea was sweet."], ["Yes, the best tea."])
    assert isinstance(reward, float)


def test_bad_arguments_are_value_errors(pair):
    with pytest.raises(ValueError, match="dtype"):
        cdr.DensityRatio(STRONG, WEAK, dtype="f64")
    # This package is built with the CPU backend only; the error names the cargo feature.
    with pytest.raises(ValueError, match="no `cuda` backend"):
        cdr.DensityRatio(STRONG, WEAK, device="cuda")
    with pytest.raises(ValueError, match="unknown device `tpu`"):
        cdr.DensityRatio(STRONG, WEAK, device="tpu")
    with pytest.raises(ValueError, match="unknown router"):
        cdr.DensityRatio(STRONG, WEAK, customize="criteria", router="coin")
    with pytest.raises(ValueError, match="2 prompts but 1 responses"):
        pair.score(["a", "b"], ["x"])
    with pytest.raises(ValueError, match="unknown strategy"):
        pair.annotate([], strategy="best-best")
    with pytest.raises(cdr.CdrError, match="expected a best-of-N row"):
        pair.annotate(PAIRWISE)
    with pytest.raises(cdr.CdrError, match="expected a pairwise row"):
        pair.eval([{"prompt": "q", "responses": ["a", "b"]}])


def test_unknown_customization_preset_raises(tmp_path):
    with pytest.raises(cdr.CdrError, match="no-such-preset"):
        cdr.DensityRatio(STRONG, WEAK, customize="no-such-preset")


def test_scoring_releases_the_gil(pair):
    prompts = [f"Question number {i}: what comes after {i}?" for i in range(400)]
    responses = [f"The number {i + 1} comes after {i}, of course." for i in range(400)]
    done = threading.Event()
    ticks = 0

    def work():
        pair.score(prompts, responses)
        done.set()

    worker = threading.Thread(target=work)
    start = time.perf_counter()
    worker.start()
    while not done.is_set():
        ticks += 1
        time.sleep(0.001)
    worker.join()
    elapsed = time.perf_counter() - start
    # Held GIL: this loop could not run while Rust scores. Released: it ticks throughout.
    assert elapsed > 0.05, f"scoring took only {elapsed:.3f}s; too short to tell"
    assert ticks >= 0.3 * elapsed / 0.0011, (ticks, elapsed)


def test_cdr_log_shows_rust_logs():
    # A fresh interpreter each: logging is set up when the module loads.
    code = f"import cdr; cdr.DensityRatio({str(STRONG)!r}, {str(WEAK)!r})"
    env = {k: v for k, v in os.environ.items() if k not in ("CDR_LOG", "RUST_LOG")}
    quiet = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert quiet.returncode == 0, quiet.stderr
    assert "density-ratio pair ready" not in quiet.stderr
    loud = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env={**env, "CDR_LOG": "info"}
    )
    assert loud.returncode == 0, loud.stderr
    assert "density-ratio pair ready" in loud.stderr, loud.stderr
