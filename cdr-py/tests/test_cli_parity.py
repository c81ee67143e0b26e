"""The Python package computes what the `cdr` command computes, row for row (within 1e-6)."""

from __future__ import annotations

import json

import pytest

import cdr
from conftest import STRONG, WEAK, read_jsonl, run_cdr, write_jsonl
from rows import BEST_OF_N, PAIRWISE

TOL = 1e-6
PAIR_ARGS = ["--strong", str(STRONG), "--weak", str(WEAK), "--dtype", "f32", "--no-cache", "--quiet"]


def cli_score(cdr_bin, tmp_path, rows, *extra):
    inp = write_jsonl(tmp_path / "in.jsonl", rows)
    out = tmp_path / "out.jsonl"
    run_cdr(cdr_bin, "score", *PAIR_ARGS, "--input", str(inp), "--output", str(out), *extra)
    return {r["id"]: r for r in read_jsonl(out)}


def assert_item_close(py: dict, cli: dict):
    for key in ("reward", "strong_logprob", "weak_logprob"):
        assert py[key] == pytest.approx(cli[key], abs=TOL), key
    for key in ("n_response_tokens", "n_prompt_tokens", "truncated"):
        assert py[key] == cli[key], key


def test_score_rows_equals_cli_score(pair, cdr_bin, tmp_path):
    rows = PAIRWISE + BEST_OF_N
    cli = cli_score(cdr_bin, tmp_path, rows)
    py = pair.score_rows(rows)
    assert [r["id"] for r in py] == [r["id"] for r in rows]
    assert set(cli) == {r["id"] for r in rows}
    for record in py:
        want = cli[record["id"]]
        assert set(record) == set(want)
        if "chosen" in record:
            assert_item_close(record["chosen"], want["chosen"])
            assert_item_close(record["rejected"], want["rejected"])
            assert record["margin"] == pytest.approx(want["margin"], abs=TOL)
            assert record["correct"] == want["correct"]
            assert record["subset"] == want["subset"]
        else:
            assert len(record["scores"]) == len(want["scores"])
            for a, b in zip(record["scores"], want["scores"]):
                assert_item_close(a, b)


def test_score_equals_cli_rewards(pair, cdr_bin, tmp_path):
    cli = cli_score(cdr_bin, tmp_path, PAIRWISE[:2] + BEST_OF_N)
    prompts, responses, expected = [], [], []
    for row in PAIRWISE[:2]:
        prompts += [row["prompt"], row["prompt"]]
        responses += [row["chosen"], row["rejected"]]
        expected += [cli[row["id"]]["reward_chosen"], cli[row["id"]]["reward_rejected"]]
    for row in BEST_OF_N:
        prompts += [row["prompt"]] * len(row["responses"])
        responses += row["responses"]
        expected += cli[row["id"]]["rewards"]
    rewards = pair.score(prompts, responses)
    assert len(rewards) == len(expected)
    assert rewards == pytest.approx(expected, abs=TOL)
    # Not all equal: the comparison above is between real, differing rewards.
    assert len({round(r, 4) for r in rewards}) > 1


def test_customized_score_rows_equal_cli(cdr_bin, tmp_path):
    rows = PAIRWISE + BEST_OF_N
    cli = cli_score(cdr_bin, tmp_path, rows, "--customize", "criteria", "--router", "field")
    custom = cdr.DensityRatio(STRONG, WEAK, customize="criteria", router="field")
    py = {r["id"]: r for r in custom.score_rows(rows)}
    for rid, want in cli.items():
        got = py[rid]
        assert got.get("domain") == want.get("domain")
        if "chosen" in want:
            assert_item_close(got["chosen"], want["chosen"])
        else:
            for a, b in zip(got["scores"], want["scores"]):
                assert_item_close(a, b)
    # Customization changes the rendered prompt, so the rewards differ from the plain pair's.
    base = {r["id"]: r for r in cdr.DensityRatio(STRONG, WEAK).score_rows(rows)}
    assert base["p1"]["chosen"]["n_prompt_tokens"] != py["p1"]["chosen"]["n_prompt_tokens"]


def test_eval_equals_cli_eval(pair, cdr_bin, tmp_path):
    inp = write_jsonl(tmp_path / "prefs.jsonl", PAIRWISE)
    out, report = tmp_path / "scored.jsonl", tmp_path / "report.json"
    run_cdr(cdr_bin, "eval", *PAIR_ARGS, "--input", str(inp), "--output", str(out), "--report", str(report))
    want = json.loads(report.read_text())
    for source in (inp, str(inp), PAIRWISE):  # a path, a str path, a list of dicts
        got = pair.eval(source)
        for key in ("rows", "accuracy", "truncated_responses", "skipped_rows", "results", "reduction"):
            assert got[key] == want[key], key
        assert got.get("rewardbench") == want.get("rewardbench")
        cli_records = {r["id"]: r for r in read_jsonl(out)}
        for record in got["records"]:
            assert record["margin"] == pytest.approx(cli_records[record["id"]]["margin"], abs=TOL)


@pytest.mark.parametrize("strategy,seed", [("best-worst", 0), ("best-random", 7)])
def test_annotate_equals_cli_annotate(pair, cdr_bin, tmp_path, strategy, seed):
    inp = write_jsonl(tmp_path / "bon.jsonl", BEST_OF_N)
    out = tmp_path / "pairs.jsonl"
    run_cdr(
        cdr_bin, "annotate", *PAIR_ARGS, "--input", str(inp), "--output", str(out),
        "--pair-strategy", strategy, "--seed", str(seed),
    )
    want = read_jsonl(out)
    got = pair.annotate(BEST_OF_N, strategy=strategy, seed=seed)
    assert len(got) == len(want) > 0
    for g, w in zip(got, want):
        assert set(g) == set(w)
        for key in ("id", "prompt", "chosen", "rejected"):
            assert g[key] == w[key], key
        assert g["score_chosen"] == pytest.approx(w["score_chosen"], abs=TOL)
        assert g["score_rejected"] == pytest.approx(w["score_rejected"], abs=TOL)


def test_logprobs_equal_cli_logprobs(cdr_bin, tmp_path):
    rows = PAIRWISE + BEST_OF_N
    inp = write_jsonl(tmp_path / "in.jsonl", rows)
    out = tmp_path / "lp.jsonl"
    run_cdr(
        cdr_bin, "logprobs", "--model", str(STRONG), "--dtype", "f32", "--quiet", "--per-token",
        "--cache", str(tmp_path / "cache"), "--input", str(inp), "--output", str(out),
    )
    want = {r["id"]: r for r in read_jsonl(out)}
    got = cdr.logprobs(STRONG, rows, per_token=True)
    assert [r["id"] for r in got] == [r["id"] for r in rows]
    for record in got:
        w = want[record["id"]]
        assert len(record["responses"]) == len(w["responses"])
        for a, b in zip(record["responses"], w["responses"]):
            assert a["logprob"] == pytest.approx(b["logprob"], abs=TOL)
            assert a["token_logprobs"] == pytest.approx(b["token_logprobs"], abs=TOL)
            assert a["n_response_tokens"] == b["n_response_tokens"]


def assert_routed_rows_equal(cdr_bin, tmp_path, cli_args, **kwargs):
    """`score_rows` of a customized pair equals `cdr score` with the same routing flags."""
    rows = PAIRWISE + BEST_OF_N
    cli = cli_score(cdr_bin, tmp_path, rows, "--customize", "criteria", *cli_args)
    custom = cdr.DensityRatio(STRONG, WEAK, customize="criteria", **kwargs)
    py = {r["id"]: r for r in custom.score_rows(rows)}
    assert set(py) == set(cli)
    for rid, want in cli.items():
        got = py[rid]
        assert got["domain"] == want["domain"]
        if "chosen" in want:
            assert_item_close(got["chosen"], want["chosen"])
            assert_item_close(got["rejected"], want["rejected"])
        else:
            for a, b in zip(got["scores"], want["scores"]):
                assert_item_close(a, b)


def test_likelihood_routed_score_rows_equal_cli(cdr_bin, tmp_path):
    assert_routed_rows_equal(cdr_bin, tmp_path, ["--router", "likelihood"], router="likelihood")


def test_calibrated_likelihood_routing_equals_cli(cdr_bin, tmp_path):
    assert_routed_rows_equal(
        cdr_bin,
        tmp_path,
        ["--router", "likelihood", "--router-calibrate"],
        router="likelihood",
        router_calibrate=True,
    )


def test_llm_routed_score_rows_equal_cli(cdr_bin, tmp_path):
    # The strong model answers the routing question by generating; whatever it names (the tiny
    # random model names none, so rows go to the default domain), both must agree.
    assert_routed_rows_equal(cdr_bin, tmp_path, ["--router", "llm"], router="llm")
