"""verl custom reward functions (``custom_reward_function.path`` / ``.name`` in the config).

verl's reward managers call ``compute_score(data_source=..., solution_str=..., ground_truth=...,
extra_info=...)`` per sample (NaiveRewardManager, the reward loop's naive manager) and
``compute_score(data_sources=..., solution_strs=..., ground_truths=..., extra_infos=...)`` per
batch (BatchRewardManager); a score is a float (or a dict with ``"score"``). ``solution_str`` is
the decoded response alone, so the prompt has to come from the row's ``extra_info``: put it
there when preparing the dataset, under ``"prompt"`` (a string or verl's message list) or
``"question"`` (a string, as verl's GSM8K example writes it). A file for verl::

    import cdr
    from cdr.verl import make_compute_score

    compute_score = make_compute_score(cdr.DensityRatio("strong-dir", "weak-dir"))
"""

from __future__ import annotations

from typing import Any, Callable, List, Optional, Sequence

from ._prompts import prompt_of

__all__ = ["PROMPT_KEYS", "make_batch_compute_score", "make_compute_score", "prompt_from_extra_info"]

#: The ``extra_info`` keys the prompt is read from, first found wins.
PROMPT_KEYS = ("prompt", "question")


def prompt_from_extra_info(extra_info: Any, keys: Sequence[str] = PROMPT_KEYS) -> Any:
    """The prompt (string or message list) stored in a row's ``extra_info``."""
    if isinstance(extra_info, dict):
        for key in keys:
            value = extra_info.get(key)
            if value is not None:
                return prompt_of(value)
    raise KeyError(
        f"cdr needs the prompt in extra_info under one of {list(keys)}; "
        f"got keys {sorted(extra_info) if isinstance(extra_info, dict) else type(extra_info).__name__}"
    )


def make_compute_score(pair: Any, *, prompt_keys: Sequence[str] = PROMPT_KEYS) -> Callable[..., float]:
    """``compute_score(data_source, solution_str, ground_truth, extra_info=None, **kwargs)``:
    the density-ratio reward of ``solution_str`` after the prompt in ``extra_info``; an empty
    response scores 0.0."""

    def compute_score(
        data_source: Any, solution_str: str, ground_truth: Any, extra_info: Optional[dict] = None, **kwargs: Any
    ) -> float:
        if not solution_str.strip():
            return 0.0
        prompt = prompt_from_extra_info(extra_info, prompt_keys)
        return float(pair.score([prompt], [solution_str])[0])

    return compute_score


def make_batch_compute_score(pair: Any, *, prompt_keys: Sequence[str] = PROMPT_KEYS) -> Callable[..., List[float]]:
    """The batched form for verl's BatchRewardManager:
    ``compute_score(data_sources, solution_strs, ground_truths, extra_infos, **kwargs)``."""

    def compute_score(
        data_sources: Sequence[Any],
        solution_strs: Sequence[str],
        ground_truths: Sequence[Any],
        extra_infos: Sequence[Optional[dict]],
        **kwargs: Any,
    ) -> List[float]:
        keep = [i for i, s in enumerate(solution_strs) if s.strip()]
        out = [0.0] * len(solution_strs)
        if keep:
            prompts = [prompt_from_extra_info(extra_infos[i], prompt_keys) for i in keep]
            for i, r in zip(keep, pair.score(prompts, [solution_strs[i] for i in keep])):
                out[i] = float(r)
        return out

    return compute_score
