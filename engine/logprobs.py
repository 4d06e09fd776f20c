"""Logprob records stay token ids until the API boundary; this is the one place that makes OpenAI's shape."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(slots=True)
class TokenRecord:
    """One token of a choice: its id, raw logprob (None for the first prompt token), top-k ids/logprobs and
    the character offset (into prompt + completion) where it starts."""
    token: int
    logprob: float | None
    top_ids: np.ndarray | None
    top_logprobs: np.ndarray | None
    offset: int


def token_string(piece: bytes) -> str:
    """OpenAI's convention: the token's text, or 'bytes:\\xe2\\x80' when its bytes are not whole characters."""
    try:
        return piece.decode("utf-8")
    except UnicodeDecodeError:
        return "bytes:" + "".join(f"\\x{b:02x}" for b in piece)


class LogprobFormatter:
    """Turns TokenRecords into the `logprobs` object; token strings are cached per id."""

    def __init__(self, piece_for_logprobs):
        self._piece = piece_for_logprobs  # token id -> bytes (control tokens rendered by name)
        self._strings: dict[int, str] = {}

    def string(self, token: int) -> str:
        s = self._strings.get(token)
        if s is None:
            s = self._strings[token] = token_string(self._piece(token))
        return s

    def format(self, records: list[TokenRecord]) -> dict:
        tokens, token_logprobs, top_logprobs, offsets = [], [], [], []
        for r in records:
            tokens.append(self.string(r.token))
            token_logprobs.append(r.logprob)
            offsets.append(r.offset)
            if r.top_ids is None:
                top_logprobs.append(None)
                continue
            top: dict[str, float] = {}
            for t, lp in zip(r.top_ids.tolist(), r.top_logprobs.tolist()):
                top.setdefault(self.string(t), lp)  # distinct ids that render alike keep the likelier one
            top.setdefault(self.string(r.token), r.logprob)  # the sampled token is always present: k or k+1
            top_logprobs.append(top)
        return {"tokens": tokens, "token_logprobs": token_logprobs, "top_logprobs": top_logprobs,
                "text_offset": offsets}
