"""A per-row logits constraint: the seam structured output (JSON schema, regex, choice, grammars) plugs into.

A matcher says which tokens may come next, as a packed bitmask, and advances on every token the choice takes.
`Engine.submit(request, constraint=factory)` gives each candidate (every `n`/`best_of` sequence) its own
matcher, `factory(candidate_index)`. Each step the candidate's row is masked (kernels.mask_logits) before the
sampling kernels, so logit_bias, penalties, temperature, top_p and the seeded draw all see only allowed tokens,
and the reported logprobs are those of the constrained distribution. A matcher that allows nothing ends the
choice: only end-of-generation tokens are left. A constrained candidate carries no speculative drafts.
"""
from __future__ import annotations

from typing import Callable, Protocol

import numpy as np

import kernels


class LogitsConstraint(Protocol):
    def allowed(self) -> np.ndarray:
        """The tokens allowed next: int32 words, bit (t % 32) of word t // 32 for token t."""

    def advance(self, token: int) -> None:
        """The choice took `token` (always one that allowed() allowed)."""


ConstraintFactory = Callable[[int], LogitsConstraint]


class RowConstraint:
    """One candidate's matcher plus its row buffer: `mask(row)` is the row the sampler sees."""

    def __init__(self, matcher: LogitsConstraint, n_vocab: int, eog_tokens):
        self.matcher = matcher
        self._out = np.empty(n_vocab, np.float32)
        self._eog = np.zeros((n_vocab + 31) // 32, np.int32)
        for t in eog_tokens:
            self._eog[t >> 5] |= np.int32(np.uint32(1 << (t & 31)).view(np.int32))

        self._ended = False  # the matcher allowed nothing: the choice ends on an end-of-generation token

    def mask(self, row: np.ndarray) -> np.ndarray:
        self._ended = kernels.mask_logits(row, self.matcher.allowed(), self._out) == 0
        if self._ended:
            kernels.mask_logits(row, self._eog, self._out)
        return self._out

    def advance(self, token: int) -> None:
        if not self._ended:
            self.matcher.advance(token)
