"""The TRL, OpenRLHF and verl adapters, called as those frameworks call them.

Argument shapes, from the frameworks' sources:
- TRL: trl/trainer/grpo_trainer.py, GRPOTrainer._calculate_rewards: `reward_func(prompts=...,
  completions=..., completion_ids=..., **reward_kwargs)` with the dataset's other columns plus
  `trainer_state`, `log_extra`, `log_metric`; None -> NaN; name from trl/trainer/utils.py
  get_callable_name (`__name__`).
- OpenRLHF: openrlhf/utils/agent.py, SingleTurnAgentExecutor: loads `reward_func` from the
  --remote_rm_url .py file, query = tokenizer.decode(prompt ids + response ids,
  skip_special_tokens=False), calls `reward_func([query], [prompt], [label])` (batches of one, in
  a thread) and reads "rewards", "scores", "extra_logs"; openrlhf/trainer/ppo_utils/
  samples_generator.py turns them into `torch.tensor([reward])` and `value.flatten()[0].item()`;
  examples/python/reward_func.py shows the returned float tensors.
- verl: verl/workers/reward_manager/naive.py (and verl/experimental/reward_loop/reward_manager/
  naive.py): `compute_score(data_source=..., solution_str=..., ground_truth=..., extra_info=...)`
  with solution_str the response decoded alone and extra_info the row's column plus `num_turns`
  and `rollout_reward_scores`; verl/workers/reward_manager/batch.py: `compute_score(
  data_sources=..., solution_strs=..., ground_truths=..., extra_infos=...)`;
  examples/data_preprocess/gsm8k.py writes `extra_info={"question": ..., ...}` and a message
  list `prompt` column.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import cdr.openrlhf
import cdr.trl
import cdr.verl

QUESTIONS = ["What is 2 + 2?", "Name a prime number."]
ANSWERS = ["It is 4.", "Seven."]


def test_trl_string_prompts(pair):
    func = cdr.trl.reward_func(pair)
    assert func.__name__ == "cdr"
    got = func(
        prompts=QUESTIONS, completions=ANSWERS, completion_ids=[[1, 2], [3]],
        trainer_state=None, log_extra=lambda *a, **k: None, log_metric=lambda *a, **k: None,
        answer=["4", "7"],
    )
    assert got == pytest.approx(pair.score(QUESTIONS, ANSWERS), abs=0)
    assert all(isinstance(r, float) for r in got)


def test_trl_conversational_prompts(pair):
    func = cdr.trl.reward_func(pair, name="density_ratio")
    assert func.__name__ == "density_ratio"
    prompts = [[{"role": "system", "content": "Be brief."}, {"role": "user", "content": q}] for q in QUESTIONS]
    completions = [[{"role": "assistant", "content": a}] for a in ANSWERS]
    got = func(prompts=prompts, completions=completions, completion_ids=[[1], [2]], trainer_state=None)
    assert got == pytest.approx(pair.score(prompts, ANSWERS), abs=0)
    # The system turn is part of what is scored.
    assert got != pytest.approx(pair.score(QUESTIONS, ANSWERS), abs=1e-9)


def test_trl_empty_completion_is_none(pair):
    func = cdr.trl.reward_func(pair)
    got = func(prompts=QUESTIONS, completions=["", ANSWERS[1]])
    assert got[0] is None
    assert got[1] == pytest.approx(pair.score(QUESTIONS[1:], ANSWERS[1:])[0], abs=0)


def test_trl_domain_column_routes_customization():
    from conftest import STRONG, WEAK

    custom = cdr.DensityRatio(STRONG, WEAK, customize="criteria")
    func = cdr.trl.reward_func(custom, domain_column="domain")
    domains = ["REASONING", "chat"]
    got = func(prompts=QUESTIONS, completions=ANSWERS, domain=domains)
    assert got == pytest.approx(custom.score(QUESTIONS, ANSWERS, domains=domains), abs=0)
    # The domain picks the criteria turn, so another domain scores differently.
    other = func(prompts=QUESTIONS, completions=ANSWERS, domain=["SAFETY", "SAFETY"])
    assert other != pytest.approx(got, abs=1e-9)


def test_openrlhf_reward_func(pair):
    func = cdr.openrlhf.make_reward_func(pair)
    prompts = [f"<|im_start|>user\n{q}<|im_end|>\n<|im_start|>assistant\n" for q in QUESTIONS]
    queries = [p + a + pair.eos_token for p, a in zip(prompts, ANSWERS)]
    labels = ["4", "7"]
    # OpenRLHF calls with one query at a time, from a worker thread.
    infos = [func([q], [p], [l]) for q, p, l in zip(queries, prompts, labels)]
    expected = pair.score(prompts, ANSWERS)
    for info, want in zip(infos, expected):
        assert set(info) == {"rewards", "scores", "extra_logs"}
        for key in ("rewards", "scores"):
            t = info[key]
            assert isinstance(t, torch.Tensor) and t.dtype == torch.float32 and t.shape == (1,)
        # What samples_generator.py does with them.
        reward = torch.tensor([info["rewards"]])
        assert reward.shape == (1,)
        assert reward.item() == pytest.approx(want, abs=1e-5)
        for value in info["extra_logs"].values():
            assert value.flatten()[0].item() == pytest.approx(want, abs=1e-5)
    # A batch in one call gives the same values.
    batch = func(queries, prompts, labels)
    assert batch["rewards"].tolist() == pytest.approx(expected, abs=1e-5)


def test_openrlhf_response_is_query_minus_prompt():
    assert cdr.openrlhf.response_of("PROMPT answer<eos><eos>", "PROMPT ", ["<eos>"]) == "answer"
    with pytest.raises(ValueError, match="does not start with its prompt"):
        cdr.openrlhf.response_of("other text", "PROMPT ", [])


def test_openrlhf_prompt_messages_hook(pair):
    convo = [{"role": "user", "content": QUESTIONS[0]}]
    func = cdr.openrlhf.make_reward_func(pair, prompt_messages=lambda prompt, label: convo)
    info = func(["templated prompt" + ANSWERS[0]], ["templated prompt"], ["label"])
    assert info["rewards"].item() == pytest.approx(pair.score([convo], [ANSWERS[0]])[0], abs=1e-5)


def test_verl_compute_score(pair):
    compute_score = cdr.verl.make_compute_score(pair)
    messages = np.array([{"role": "user", "content": QUESTIONS[0]}], dtype=object)
    extra_info = {"split": "train", "index": 0, "prompt": messages, "num_turns": None, "rollout_reward_scores": {}}
    got = compute_score(data_source="openai/gsm8k", solution_str=ANSWERS[0], ground_truth="4", extra_info=extra_info)
    assert isinstance(got, float)
    assert got == pytest.approx(pair.score([QUESTIONS[0]], [ANSWERS[0]])[0], abs=0)
    # verl's GSM8K preprocessing keeps the question under "question".
    q_only = {"split": "train", "index": 1, "answer": "...", "question": QUESTIONS[1]}
    got = compute_score(data_source="openai/gsm8k", solution_str=ANSWERS[1], ground_truth="7", extra_info=q_only)
    assert got == pytest.approx(pair.score([QUESTIONS[1]], [ANSWERS[1]])[0], abs=0)
    assert compute_score(data_source="x", solution_str="", ground_truth=None, extra_info=q_only) == 0.0
    with pytest.raises(KeyError, match="extra_info"):
        compute_score(data_source="x", solution_str="hi", ground_truth=None, extra_info={"index": 3})


def test_verl_batch_compute_score(pair):
    compute_score = cdr.verl.make_batch_compute_score(pair)
    extras = [{"question": q, "rollout_reward_scores": {}} for q in QUESTIONS]
    got = compute_score(
        data_sources=np.array(["a", "b"], dtype=object), solution_strs=ANSWERS,
        ground_truths=["4", "7"], extra_infos=np.array(extras, dtype=object),
    )
    assert got == pytest.approx(pair.score(QUESTIONS, ANSWERS), abs=0)
    assert all(math.isfinite(x) for x in got)
