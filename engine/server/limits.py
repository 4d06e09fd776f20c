"""Per-request limits the server sets on top of the engine's own ranges, so that one request cannot ask for
unbounded work or memory: prompts per request (--max-prompts) and sequences per request, prompts x best_of
(best_of is n unless given; --max-sequences). The body size limit is read with the body (body.py).

They apply to the parsed request: a wrong type or an out-of-range value fails first, with the engine's own
message naming the parameter and its range.
"""
from __future__ import annotations

from ..params import parse_params
from .errors import ApiError


def check_request_limits(body: dict, n_vocab: int, max_prompts: int, max_sequences: int) -> None:
    params = parse_params(body, n_vocab)  # raises CompletionError for anything the engine would refuse
    prompts = len(params.prompts)
    if prompts > max_prompts:
        raise ApiError(400, f"prompt holds {prompts} prompts; this server accepts at most {max_prompts} per request "
                            f"(--max-prompts)", param="prompt", code="too_many_prompts")
    sequences = prompts * params.best_of
    if sequences > max_sequences:
        param = "best_of" if params.best_of > params.n else "n"
        raise ApiError(400, f"this request asks for {sequences} sequences ({prompts} prompt(s) x {param} "
                            f"{params.best_of}); this server runs at most {max_sequences} per request "
                            f"(--max-sequences)", param=param, code="too_many_sequences")
