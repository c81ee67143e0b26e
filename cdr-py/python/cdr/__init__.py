"""Customized density-ratio rewards: how much more a strong LLM likes a response than a weak one.

``reward(prompt, response) = sum log S(response tokens) - sum log W(response tokens)``, both models
scoring one text rendered by the strong model's chat template (optionally customized per domain).

    >>> import cdr
    >>> pair = cdr.DensityRatio("strong-model-dir", "weak-model-dir")      # doctest: +SKIP
    >>> pair.score(["What is 2 + 2?"], ["4."])                             # doctest: +SKIP
    [3.21]

Adapters for RL trainers: :mod:`cdr.trl` (GRPO / Online DPO reward functions),
:mod:`cdr.openrlhf` (``reward_func`` files) and :mod:`cdr.verl` (``compute_score``).
"""

from ._cdr import CdrError, DensityRatio, __version__, logprobs

__all__ = ["CdrError", "DensityRatio", "logprobs", "__version__"]
