"""Typed shapes of what create_completion returns: plain dicts at run time, exactly OpenAI's JSON."""
from __future__ import annotations

from typing import Literal, Optional, TypedDict


class Logprobs(TypedDict):
    tokens: list[str]
    token_logprobs: list[Optional[float]]
    top_logprobs: list[Optional[dict[str, float]]]
    text_offset: list[int]


class Choice(TypedDict):
    text: str
    index: int
    logprobs: Optional[Logprobs]
    finish_reason: Optional[Literal["stop", "length"]]  # None only in a stream chunk before the last


class Usage(TypedDict):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class _CompletionBase(TypedDict):
    id: str
    object: Literal["text_completion"]
    created: int
    model: str
    system_fingerprint: str
    choices: list[Choice]


class Completion(_CompletionBase):
    usage: Usage


class CompletionChunk(_CompletionBase, total=False):
    usage: Optional[Usage]  # present (null, or the totals in the last chunk) only with include_usage
