"""A TRL reward function: ``GRPOTrainer(reward_funcs=[cdr.trl.reward_func(pair)])``.

TRL calls a reward function as ``func(prompts=..., completions=..., completion_ids=..., **columns)``
(plus ``trainer_state``, ``log_extra``, ``log_metric``) and expects one float, or ``None`` where a
function does not apply, per completion; it logs the mean as ``rewards/<__name__>/mean``.
Prompts and completions are strings, or conversational: a prompt is a list of ``{role, content}``
messages and a completion a list holding one assistant message. Both are handled.
"""

from __future__ import annotations

from typing import Any, Callable, List, Optional

from ._prompts import completion_text, prompt_of

__all__ = ["reward_func"]


def reward_func(
    pair: Any,
    *,
    name: str = "cdr",
    domain_column: Optional[str] = None,
    progress: bool = False,
) -> Callable[..., List[Optional[float]]]:
    """A TRL reward function scoring each completion with ``pair`` (a :class:`cdr.DensityRatio`).

    An empty (or whitespace-only) completion has no response text to score: it gets ``None``,
    which TRL treats as "not scored" (NaN, left out of means). ``domain_column`` names a dataset
    column holding each row's customization domain. The returned function's ``__name__`` is
    ``name``, so TRL logs ``rewards/<name>/mean``.
    """

    def score(prompts: list, completions: list, **kwargs: Any) -> List[Optional[float]]:
        if len(prompts) != len(completions):
            raise ValueError(f"{len(prompts)} prompts but {len(completions)} completions")
        texts = [completion_text(c) for c in completions]
        domains = kwargs.get(domain_column) if domain_column else None
        keep = [i for i, t in enumerate(texts) if t.strip()]
        rewards: List[Optional[float]] = [None] * len(texts)
        if keep:
            scored = pair.score(
                [prompt_of(prompts[i]) for i in keep],
                [texts[i] for i in keep],
                domains=[domains[i] for i in keep] if domains is not None else None,
                progress=progress,
            )
            for i, r in zip(keep, scored):
                rewards[i] = r
        return rewards

    score.__name__ = name
    score.__qualname__ = name
    return score
