"""What a request asks the model to do: per prompt, its candidates (n or best_of sequences) and whether its
own tokens are scored (echo with logprobs). The loop advances these; completion.py reads them."""
from __future__ import annotations

from dataclasses import dataclass, field

from .choice import ChoiceState
from .constraint import RowConstraint
from .logprobs import TokenRecord
from .prompts import PromptInput
from .sampler import ChoiceSampler
from .speculative import SequenceDrafts


@dataclass(eq=False)
class Candidate:
    prompt: PromptInput
    state: ChoiceState
    sampler: ChoiceSampler
    pos: int = 0  # position of `last` in the sequence
    last: int = -1  # the most recent sampled token, to be decoded next
    drafts: SequenceDrafts | None = None  # speculative decoding: this sequence's drafter (made when it decodes)
    constraint: RowConstraint | None = None  # structured output: masks each row, advanced on each token taken


@dataclass(eq=False)
class PromptWork:
    prompt: PromptInput
    candidates: list[Candidate]
    want_logprobs: int | None  # echo with logprobs: top-k for the prompt's own tokens
    records: list[TokenRecord] | None = field(default=None)  # filled by the first prefill that scores
