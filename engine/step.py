"""What one engine step is made of, as plain data: the scheduler's plan, what each logits row of the batch is
for, the step's output (draws and prompt scores), and the record kept for tests and diagnostics.

The order of a step: Scheduler.plan() -> StepPlan; the loop turns it into one llama_decode (a row per flagged
token, each with its RowOwner), samples and scores the rows -> StepOutput; Scheduler.update_from_output()
applies that output to every request it touched.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .job import Unit
from .logprobs import TokenRecord
from .slots import Slot
from .work import Candidate


@dataclass
class StepPlan:
    decode: list[tuple[Unit, Candidate, Slot]]  # one token of each decoding candidate (then its drafts)
    prefill: list[tuple[Unit, int, int]]  # unit, first and end prompt positions evaluated now
    drafts: dict = field(default_factory=dict)  # Candidate -> draft tokens evaluated after its decode token


# ---- what a logits row of the batch is for -------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class SampleRow:
    """A decoding candidate's row (its draft tokens' rows follow its own, one SampleRow each)."""
    unit: Unit
    candidate: Candidate


@dataclass(frozen=True, eq=False)
class ScoreRow:
    """An echo-logprobs prompt's row at `position`: it scores the prompt token at position + 1."""
    unit: Unit
    position: int


@dataclass(frozen=True, eq=False)
class LastPromptRow:
    """The row after a prompt's last token: every candidate of the unit draws its first token from it."""
    unit: Unit


RowOwner = SampleRow | ScoreRow | LastPromptRow


# ---- what the step produced ------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Draw:
    """One sampled token: its logprob, and its row's top-k when the request asked for logprobs."""
    token: int
    logprob: float
    top_ids: np.ndarray | None
    top_lps: np.ndarray | None


@dataclass
class StepOutput:
    draws: dict[Candidate, list[Draw]]  # per candidate: longer than one when draft tokens were accepted
    scores: dict[Unit, list[TokenRecord]]  # per echo-logprobs unit: its prompt tokens scored this step, in order


@dataclass(frozen=True)
class StepRecord:
    """What one llama_decode held (for tests and diagnostics)."""
    decode: tuple[tuple[int, int], ...]  # (request id, seq): one token each
    prefill: tuple[tuple[int, int, int], ...]  # (request id, seq, prompt tokens)
    admitted: tuple[int, ...]  # request ids with a unit admitted just before this step
    drafts: tuple[tuple[int, int, int], ...] = ()  # (request id, seq, draft tokens after its decode token)

    @property
    def n_tokens(self) -> int:
        return len(self.decode) + sum(n for _, _, n in self.prefill) + sum(n for _, _, n in self.drafts)
