"""Per-request sampling plan (built once) and per-choice sampler state; calls the fused kernel."""
from __future__ import annotations

import secrets
from dataclasses import dataclass

import numpy as np

import kernels

from .params import CompletionParams

_EMPTY_I32 = np.zeros(0, np.int32)
_EMPTY_F32 = np.zeros(0, np.float32)


@dataclass(frozen=True)
class SamplingPlan:
    """What every step of every choice of one request does; inactive stages are skipped by the kernel."""
    bias_ids: np.ndarray
    bias_values: np.ndarray
    frequency: float
    presence: float
    temperature: float
    top_p: float
    seed: int
    n_top: int  # -1: no logprobs needed; 0..5: raw logprob of the token plus that many top entries

    @property
    def penalize(self) -> bool:
        return self.frequency != 0.0 or self.presence != 0.0

    @classmethod
    def from_params(cls, p: CompletionParams) -> "SamplingPlan":
        ids = np.array([t for t, _ in p.logit_bias], np.int32) if p.logit_bias else _EMPTY_I32
        vals = np.array([b for _, b in p.logit_bias], np.float32) if p.logit_bias else _EMPTY_F32
        seed = p.seed if p.seed is not None else secrets.randbits(63)
        return cls(ids, vals, p.frequency_penalty, p.presence_penalty, p.temperature, p.top_p, seed,
                   p.needs_logprobs)


class ChoiceSampler:
    """The state of one choice's draws: its RNG stream key (seed, choice), step counter and penalty counts."""

    def __init__(self, plan: SamplingPlan, choice: int, n_vocab: int, max_new: int):
        self.plan = plan
        self.choice = choice
        self.step = 0
        self.key = kernels.seed_to_u64(plan.seed)
        if plan.penalize:
            self.counts = np.zeros(n_vocab, np.int32)
            self.occurred = np.zeros(min(n_vocab, max_new) + 1, np.int32)
        else:
            self.counts = self.occurred = _EMPTY_I32
        self.n_occurred = 0
        k = max(plan.n_top, 0)
        self.top_ids = np.zeros(max(k, 1), np.int32)
        self.top_lps = np.zeros(max(k, 1), np.float64)

    def sample(self, row: np.ndarray, ws: kernels.Workspace) -> tuple[int, float]:
        """Draw the next token from a raw logits row; top-k (when asked) lands in top_ids/top_lps."""
        p = self.plan
        token, logprob, self.n_occurred = kernels.sample_token(
            row, ws, key=self.key, choice=self.choice, step=self.step, temperature=p.temperature, top_p=p.top_p,
            bias_ids=p.bias_ids, bias_values=p.bias_values, counts=self.counts, occurred=self.occurred,
            n_occurred=self.n_occurred, frequency=p.frequency, presence=p.presence, n_top=p.n_top,
            top_ids=self.top_ids, top_lps=self.top_lps)
        self.step += 1
        return int(token), float(logprob)
