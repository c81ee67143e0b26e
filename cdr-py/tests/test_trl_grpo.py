"""A real TRL GRPOTrainer (from PyPI) trains a tiny fixture policy for two steps on the CPU with
cdr as its reward, and the rewards TRL logs are cdr's rewards for the completions it sampled."""

from __future__ import annotations

import math

import pytest

import cdr
import cdr.trl
from conftest import POLICY, STRONG, WEAK


import datasets  # noqa: E402
import torch  # noqa: E402
from trl import GRPOConfig, GRPOTrainer  # noqa: E402

QUESTIONS = [
    "What is 2 + 2?",
    "Name a prime number.",
    "Say hello.",
    "Pick a color.",
]


def nanmean(values):
    kept = [v for v in values if v is not None and not math.isnan(v)]
    return sum(kept) / len(kept) if kept else float("nan")


@pytest.mark.parametrize("conversational", [False, True])
def test_grpo_two_steps_logs_cdr_rewards(tmp_path, conversational):
    pair = cdr.DensityRatio(STRONG, WEAK)
    reward = cdr.trl.reward_func(pair)
    calls = []

    def cdr_reward(prompts, completions, **kwargs):
        out = reward(prompts, completions, **kwargs)
        calls.append((list(prompts), list(completions), list(out)))
        return out

    cdr_reward.__name__ = reward.__name__

    if conversational:
        prompts = [[{"role": "user", "content": q}] for q in QUESTIONS]
    else:
        prompts = QUESTIONS
    train = datasets.Dataset.from_dict({"prompt": prompts})
    args = GRPOConfig(
        output_dir=str(tmp_path / "out"),
        per_device_train_batch_size=4,
        num_generations=4,
        max_completion_length=12,
        max_steps=2,
        learning_rate=1e-2,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        use_cpu=True,
        bf16=False,
        seed=0,
        dataloader_num_workers=0,
    )
    trainer = GRPOTrainer(model=str(POLICY), reward_funcs=[cdr_reward], args=args, train_dataset=train)
    before = [p.detach().clone() for p in trainer.model.parameters()]
    trainer.train()

    assert trainer.state.global_step == 2
    changed = any(not torch.equal(a, b.detach()) for a, b in zip(before, trainer.model.parameters()))
    assert changed, "two optimisation steps left every weight unchanged"

    logged = [h["rewards/cdr/mean"] for h in trainer.state.log_history if "rewards/cdr/mean" in h]
    assert len(calls) == 2 and len(logged) == 2, (len(calls), logged)

    # Rescore what TRL handed the reward function with a separately loaded pair.
    fresh = cdr.DensityRatio(STRONG, WEAK)
    for (seen_prompts, completions, returned), mean in zip(calls, logged):
        assert len(completions) == 4
        if conversational:
            assert all(isinstance(p, list) for p in seen_prompts)
            texts = [c[0]["content"] for c in completions]
        else:
            assert all(isinstance(p, str) for p in seen_prompts)
            texts = list(completions)
        keep = [i for i, t in enumerate(texts) if t.strip()]
        assert keep, "the policy produced only empty completions"
        rescored = [None] * len(texts)
        for i, r in zip(keep, fresh.score([seen_prompts[i] for i in keep], [texts[i] for i in keep])):
            rescored[i] = r
        for a, b in zip(returned, rescored):
            assert (a is None and b is None) or a == pytest.approx(b, abs=1e-6)
        # TRL keeps rewards as float32 tensors and logs their nanmean.
        assert mean == pytest.approx(nanmean(rescored), rel=1e-5, abs=1e-4)
