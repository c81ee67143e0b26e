"""An OpenRLHF custom reward function (``--remote_rm_url reward.py``).

OpenRLHF loads ``reward_func`` from the file it is given and calls it as
``reward_func(queries, prompts, labels)``: lists of strings, where each query is the prompt and
the generated response decoded together (special tokens kept), each prompt the prompt text as
the policy saw it, and each label the dataset's label column. It expects a dict with
``rewards`` (a float tensor, one value per query, used for advantages), ``scores`` (the same
shape, used for dynamic filtering) and ``extra_logs`` (a dict of tensors, logged per sample).

A file for OpenRLHF::

    import cdr
    from cdr.openrlhf import make_reward_func

    reward_func = make_reward_func(cdr.DensityRatio("strong-dir", "weak-dir"))

The response is the query minus the prompt, with any trailing end-of-sequence text (the strong
template's ``eos_token`` and ``stop`` strings) removed: cdr's own rendering adds the end of the
turn. The prompt goes to cdr as one user turn: run OpenRLHF without ``--apply_chat_template``,
or pass ``prompt_messages`` to map ``(prompt, label)`` to the conversation cdr should render.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Optional, Sequence

from ._prompts import prompt_of

__all__ = ["make_reward_func", "response_of"]


def response_of(query: str, prompt: str, stop: Sequence[str] = ()) -> str:
    """The response part of an OpenRLHF query: ``query`` minus its leading ``prompt``, with
    trailing ``stop`` strings (end-of-sequence texts) and padding after them removed."""
    if not query.startswith(prompt):
        raise ValueError(
            "the query does not start with its prompt (OpenRLHF passes the decoded prompt + "
            f"response as the query): prompt {prompt[:60]!r}..., query {query[:60]!r}..."
        )
    response = query[len(prompt):]
    changed = True
    while changed:
        changed = False
        for s in stop:
            if s and response.endswith(s):
                response = response[: -len(s)]
                changed = True
    return response


def make_reward_func(
    pair: Any,
    *,
    stop: Sequence[str] = (),
    prompt_messages: Optional[Callable[[str, Any], Any]] = None,
) -> Callable[..., Dict[str, Any]]:
    """``reward_func(queries, prompts, labels, **kwargs)`` for OpenRLHF, scoring with ``pair``.

    ``stop``: further end-of-sequence texts to strip from responses (the strong template's
    ``eos_token`` always is). ``prompt_messages(prompt, label)``: the conversation (string or
    message list) to score the response in; by default the prompt text as one user turn.
    An empty response gets reward 0.0 (nothing to score).
    """
    stops = [s for s in [pair.eos_token, *stop] if s]

    def reward_func(queries: Sequence[str], prompts: Sequence[str], labels: Sequence[Any], **kwargs: Any) -> Dict[str, Any]:
        import torch

        if not (len(queries) == len(prompts) == len(labels)):
            raise ValueError(f"{len(queries)} queries, {len(prompts)} prompts, {len(labels)} labels")
        responses = [response_of(q, p, stops) for q, p in zip(queries, prompts)]
        convos = [
            prompt_of(prompt_messages(p, l) if prompt_messages else p) for p, l in zip(prompts, labels)
        ]
        keep = [i for i, r in enumerate(responses) if r.strip()]
        values = [0.0] * len(responses)
        if keep:
            scored = pair.score([convos[i] for i in keep], [responses[i] for i in keep])
            for i, r in zip(keep, scored):
                values[i] = float(r)
        rewards = torch.tensor(values, dtype=torch.float32)
        return {
            "rewards": rewards,
            "scores": rewards.clone(),
            "extra_logs": {"cdr_reward": rewards.clone()},
        }

    return reward_func
