"""Prompt-lookup speculative decoding: what to draft, and how much of it a step should carry.

A sequence drafts the tokens that followed the latest earlier occurrence of its own last n tokens (prompt plus
generated text, n from ngram_max down to ngram_min). The loop evaluates [last token, d1..dk] in one
llama_decode and samples every row in turn with the sequence's own sampler (same kernel, same (seed, choice,
step), penalties counting the tokens before): drafts are accepted while the sample equals them and the first
sample that differs is the next token. So the output is the bytes speculation off gives (engine/loop.py).

How many drafts a step carries is a cost decision: on a CPU, k tokens of one sequence cost more than one
(measured 1.78x for 2, 2.67x for 4, 4.17x for 8 on SmolLM2), so drafts pay only when they are likely right.
Each sequence keeps an estimate of how often its drafts are right, per n-gram size (updated from every step:
a draft that was not sent is still checked against the token that came), and the step adds draft tokens,
likeliest first, while they raise the expected tokens per unit of step cost.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

SPECULATIVE_MODES = ("prompt-lookup",)
DRAFT_MAX_RANGE = (1, 32)
NGRAM_RANGE = (1, 8)
# Acceptance assumed before any of a sequence's drafts were checked: well under what drafts need to pay on a CPU
# (0.75 and up: 2.67x for 4 tokens), so a sequence drafts only once its unsent proposals were seen to come true
# (free text then wastes no steps on guesses; a copy starts drafting after a hit or two).
_PRIOR = 0.35
_RATE = 0.2  # weight of the newest check in the running estimate


@dataclass(frozen=True)
class Speculation:
    """The options of `Engine(speculative=...)`. `adaptive=False` (tests) sends every proposal whole, and
    `drafter` replaces prompt lookup: a callable taking the prompt's tokens and returning an object with
    push(token) and propose(k) -> (tokens, ngram size) (engine/speculative.py's NgramDrafter is the model)."""
    draft_max: int = 8
    ngram_min: int = 1
    ngram_max: int = 3
    adaptive: bool = True
    drafter: Callable | None = None

    def start(self, tokens) -> "SequenceDrafts":
        make = self.drafter or (lambda t: NgramDrafter(t, self.ngram_min, self.ngram_max))
        return SequenceDrafts(make(tokens), self.ngram_max)


def parse_speculation(speculative, draft_max: int = 8, ngram_min: int = 1, ngram_max: int = 3) -> Speculation | None:
    """Engine's options -> a Speculation, or None when off. Every bad value is a ValueError naming it."""
    if isinstance(speculative, Speculation):
        return speculative
    if speculative is None or speculative is False or speculative == "off":
        return None
    if speculative not in SPECULATIVE_MODES:
        raise ValueError(f"speculative must be one of {', '.join(repr(m) for m in SPECULATIVE_MODES)}, 'off' "
                         f"or None, got {speculative!r}")
    for name, value, (lo, hi) in (("draft_max", draft_max, DRAFT_MAX_RANGE), ("ngram_min", ngram_min, NGRAM_RANGE),
                                  ("ngram_max", ngram_max, NGRAM_RANGE)):
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            raise ValueError(f"{name} must be an integer in {lo}..{hi}, got {value!r}")
    if ngram_min > ngram_max:
        raise ValueError(f"ngram_min ({ngram_min}) must not exceed ngram_max ({ngram_max})")
    return Speculation(draft_max, ngram_min, ngram_max)


class NgramDrafter:
    """An index of every n-gram of the sequence's tokens (n in ngram_min..ngram_max) to where its latest
    occurrence ended. It is brought up to date when a draft is asked for, so each token is indexed once:
    a draft costs microseconds however long the prompt."""

    def __init__(self, tokens, ngram_min: int, ngram_max: int):
        self.tokens = list(tokens)
        self.sizes = range(ngram_max, ngram_min - 1, -1)  # longest match first
        self.ends: dict[int, dict[tuple, int]] = {n: {} for n in self.sizes}
        self.indexed = 0  # n-grams ending before this index are in `ends` (the current suffix never is)

    def push(self, token: int) -> None:
        self.tokens.append(token)

    def propose(self, k: int) -> tuple[list[int], int]:
        toks = self.tokens
        n_tok = len(toks)
        for end in range(max(self.indexed, 1), n_tok):
            for n, ends in self.ends.items():
                if end >= n:
                    ends[tuple(toks[end - n:end])] = end
        self.indexed = max(self.indexed, n_tok)
        for n in self.sizes:
            if n_tok >= n:
                at = self.ends[n].get(tuple(toks[n_tok - n:]))
                if at is not None:
                    return toks[at:at + k], n
        return [], 0


class SequenceDrafts:
    """One sequence's drafter and its running acceptance estimates (one per n-gram size)."""

    def __init__(self, drafter, ngram_max: int):
        self.drafter = drafter
        self.accept = [_PRIOR] * (max(ngram_max, 8) + 1)
        self.proposal: list[int] = []
        self.size = 0

    def propose(self, k: int) -> list[int]:
        """The draft for this step (up to k tokens), kept to check against what the step samples."""
        self.proposal, self.size = self.drafter.propose(k) if k > 0 else ([], 0)
        self.proposal = list(self.proposal)[:k]
        return self.proposal

    def rate(self) -> float:
        return self.accept[min(self.size, len(self.accept) - 1)] if self.proposal else 0.0

    def observe(self, sampled: list[int]) -> None:
        """After the step: the tokens sampled (one, or a run when drafts were sent). Each draft position that
        was reached is one check of the estimate, sent or not."""
        a = self.accept[min(self.size, len(self.accept) - 1)]
        for i, t in enumerate(sampled):
            if i >= len(self.proposal):
                break
            hit = t == self.proposal[i]
            a += _RATE * ((1.0 if hit else 0.0) - a)
            if not hit:
                break
        if self.proposal:
            self.accept[min(self.size, len(self.accept) - 1)] = a
        for t in sampled:
            self.drafter.push(t)


# Cost of a llama_decode holding w tokens, relative to one token (CPU, 2 threads, all rows' logits, one sequence
# at 400 tokens of context; `python benchmarks/spec_step_cost.py`, llamafile build, 2026-12-01). SmolLM2's
# figures, the dearer of the two registry models at almost every w (gemma-3: 1.75 at 2, 2.13 at 4, 2.95 at 8,
# 5.25 at 16). Beyond the table a token costs 0.4 (SmolLM2: 13.47 at 32). On a GPU a step of a few dozen tokens
# costs about what one does.
CPU_STEP_COST = (1.0, 1.0, 1.78, 2.28, 2.67, 3.30, 3.71, 4.17, 4.17, 4.59, 5.20, 5.44, 5.60, 6.08, 6.66, 7.08, 7.08)
CPU_COST_PER_EXTRA_TOKEN = 0.4
# On a CPU a step that already holds this many tokens carries no drafts. The cost of the next few rows past 8
# differs by model more than drafts can win back (gemma-3: 2.95x at 8 tokens, 4.12x at 9; SmolLM2: 4.05x,
# 4.59x): with the table above, 8 concurrent free-text requests on gemma-3 ran at 0.83x with drafts sent.
CPU_MAX_WIDTH_FOR_DRAFTS = 4


def step_cost(width: int, on_gpu: bool) -> float:
    if on_gpu:
        return 1.0 + 0.01 * width
    table = CPU_STEP_COST
    if width < len(table):
        return table[width]
    return table[-1] + (width - len(table) + 1) * CPU_COST_PER_EXTRA_TOKEN


def choose_drafts(entries: list[tuple[object, SequenceDrafts, list[int]]], width: int, room: int, on_gpu: bool,
                  adaptive: bool = True) -> dict:
    """How many of each proposal the step carries. `entries`: (key, drafts, proposal); `width`: tokens the
    step holds without drafts (one per decoding sequence plus prompt chunks); `room`: the most draft tokens it
    may add. Adds the likeliest draft token next (a^i for the i-th of a sequence whose drafts are right with
    probability a) as long as that raises expected tokens per step cost. Returns {key: number of drafts}."""
    chosen: dict = {}
    if adaptive and not on_gpu and width >= CPU_MAX_WIDTH_FOR_DRAFTS:
        return chosen  # batching fills the machine already
    if not adaptive:
        for key, _, proposal in entries:
            n = min(len(proposal), room)
            if n:
                chosen[key] = n
                room -= n
        return chosen
    # The i-th draft of a sequence adds a^i expected tokens. Those values fall with i, so the likeliest m
    # draft tokens overall always form a prefix of each proposal: take the m that gives the most tokens per cost.
    items = sorted(((d.rate() ** (i + 1), key) for key, d, proposal in entries for i in range(len(proposal))),
                   key=lambda x: -x[0])[:max(room, 0)]
    best_m, best, expected = 0, width / step_cost(width, on_gpu), float(width)
    for m, (gain, _) in enumerate(items, 1):
        expected += gain
        ratio = expected / step_cost(width + m, on_gpu)
        if ratio > best:
            best_m, best = m, ratio
    for _, key in items[:best_m]:
        chosen[key] = chosen.get(key, 0) + 1
    return chosen
