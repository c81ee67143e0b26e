"""Type stubs for the native module ``cdr._cdr`` (re-exported by ``cdr``)."""

import os
from typing import Any, Dict, Iterable, List, Literal, Optional, Sequence, Union

__version__: str

Message = Dict[str, str]
Prompt = Union[str, Sequence[Message]]
Row = Dict[str, Any]
PathOrRows = Union[str, "os.PathLike[str]", Iterable[Row]]

class CdrError(Exception):
    """A cdr error (bad row, model that does not load, tokenizers that disagree)."""

class DensityRatio:
    """A strong/weak model pair: reward = strong log-prob sum - weak log-prob sum."""

    def __init__(
        self,
        strong: Union[str, "os.PathLike[str]"],
        weak: Union[str, "os.PathLike[str]"],
        *,
        customize: Optional[Union[str, "os.PathLike[str]"]] = None,
        router: Literal["field", "likelihood", "llm"] = "field",
        router_model: Optional[Union[str, "os.PathLike[str]"]] = None,
        router_calibrate: bool = False,
        device: str = "cpu",
        dtype: Literal["f32", "f16", "bf16", "auto"] = "f32",
        max_batch_tokens: int = 8192,
        cache: Optional[Union[str, "os.PathLike[str]"]] = None,
        template: Optional[Union[str, "os.PathLike[str]"]] = None,
        reduction: Literal["sum", "mean"] = "sum",
        max_prompt_tokens: int = 2048,
        max_response_tokens: int = 2048,
        allow_tokenizer_mismatch: bool = False,
        one_model_at_a_time: Optional[bool] = None,
        adapter_base: Optional[Union[str, "os.PathLike[str]"]] = None,
    ) -> None: ...
    @property
    def strong(self) -> str: ...
    @property
    def weak(self) -> str: ...
    @property
    def template(self) -> str: ...
    @property
    def eos_token(self) -> str: ...
    def score(
        self,
        prompts: Sequence[Prompt],
        responses: Sequence[str],
        *,
        domains: Optional[Sequence[Optional[str]]] = None,
        skip_invalid: bool = False,
        progress: bool = False,
    ) -> List[Optional[float]]: ...
    def score_rows(self, rows: PathOrRows, *, skip_invalid: bool = False, progress: bool = False) -> List[Dict[str, Any]]: ...
    def eval(self, path_or_rows: PathOrRows, *, skip_invalid: bool = False, progress: bool = False) -> Dict[str, Any]: ...
    def annotate(
        self,
        rows: PathOrRows,
        *,
        strategy: Literal["best-worst", "best-random"] = "best-worst",
        seed: int = 0,
        skip_invalid: bool = False,
        progress: bool = False,
    ) -> List[Dict[str, Any]]: ...

def logprobs(
    model: Union[str, "os.PathLike[str]"],
    rows: PathOrRows,
    *,
    per_token: bool = False,
    token_ids: bool = False,
    device: str = "cpu",
    dtype: Literal["f32", "f16", "bf16", "auto"] = "f32",
    template: Optional[Union[str, "os.PathLike[str]"]] = None,
    max_batch_tokens: int = 8192,
    max_prompt_tokens: int = 2048,
    max_response_tokens: int = 2048,
    skip_invalid: bool = False,
    progress: bool = False,
) -> List[Dict[str, Any]]: ...
