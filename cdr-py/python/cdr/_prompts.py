"""Helpers the adapters share: prompts and completions in the shapes trainers hand over."""

from __future__ import annotations

from typing import Any


def as_list(value: Any) -> Any:
    """A numpy array (verl keeps nested columns as object arrays) or tuple as a list."""
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):
        value = value.tolist()
    if isinstance(value, tuple):
        value = list(value)
    return value


def prompt_of(value: Any) -> str | list[dict[str, str]]:
    """A prompt as cdr takes it: a string (one user turn) or a list of ``{role, content}``."""
    value = as_list(value)
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(m, dict) for m in value):
        return [{"role": str(m["role"]), "content": str(m["content"])} for m in value]
    raise TypeError(
        f"a prompt must be a string or a list of {{'role', 'content'}} dicts, got {type(value).__name__}"
    )


def completion_text(value: Any) -> str:
    """A completion's text: a string, or a conversational completion of one assistant message."""
    value = as_list(value)
    if isinstance(value, str):
        return value
    if isinstance(value, list) and len(value) == 1 and isinstance(value[0], dict):
        message = value[0]
        if message.get("role", "assistant") != "assistant":
            raise ValueError(f"a completion message must be the assistant's, got role {message.get('role')!r}")
        return str(message.get("content") or "")
    raise ValueError(
        "a completion must be a string or a list of one assistant message; "
        f"got {type(value).__name__} of length {len(value) if hasattr(value, '__len__') else '?'}"
    )
