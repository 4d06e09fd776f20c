"""What the loop does with a logits row: sample a candidate's next token, or score a prompt token (echo)."""
from __future__ import annotations

import numpy as np

import kernels

from .detok import token_offsets
from .logprobs import TokenRecord
from .model import Model
from .sampler import ChoiceSampler, SamplingPlan
from .step import Draw
from .work import Candidate, PromptWork


def sample_rows(work: list[tuple[Candidate, list, list[int]]], workspaces: list[kernels.Workspace],
                executor=None) -> dict:
    """Draw for every (candidate, rows, draft): split over the executor's threads plus the caller's, one
    Workspace each. A draw depends only on its row and its candidate's state, never on the thread or the split.
    Returns {candidate: [Draw, ...]} (see sample_run)."""
    out: dict = {}

    def run(part, ws):
        for c, rows, draft in part:
            out[c] = sample_run(c, rows, draft, ws)
    parts = min(len(workspaces), len(work)) if executor is not None else 1
    if parts <= 1:
        run(work, workspaces[0])
        return out
    size = -(-len(work) // parts)
    futures = [executor.submit(run, work[k * size:(k + 1) * size], workspaces[k]) for k in range(1, parts)]
    run(work[:size], workspaces[0])
    for f in futures:
        f.result()
    return out


def sample_run(c: Candidate, rows, draft, ws: kernels.Workspace) -> list[Draw]:
    """Row i follows draft token i (row 0 the candidate's last token). Sample the rows in order with the
    candidate's own sampler, so row i is drawn at step+i with the penalties counting the tokens before it,
    exactly as without drafts; stop after the first sample that differs from the draft (it is the true next
    token, and the later rows were computed after a wrong token). Top-k arrays are copied per draw when asked."""
    out = []
    keep_top = c.sampler.plan.n_top >= 0
    for i, row in enumerate(rows):
        if c.constraint is not None:  # a constrained candidate has no drafts: one row
            row = c.constraint.mask(row)
        token, logprob = c.sampler.sample(row, ws)
        if keep_top:
            k = c.sampler.plan.n_top
            out.append(Draw(token, logprob, c.sampler.top_ids[:k].copy(), c.sampler.top_lps[:k].copy()))
        else:
            out.append(Draw(token, logprob, None, None))
        if i >= len(draft) or token != draft[i]:
            break
    return out


def push_sample(model: Model, c: Candidate, d: Draw) -> None:
    c.state.push(d.token, model.token_bytes(d.token), d.token in model.eog_tokens, d.logprob, d.top_ids, d.top_lps)
    c.last = d.token
    if c.constraint is not None:
        c.constraint.advance(d.token)


def prompt_offsets(model: Model, w: PromptWork) -> list[int]:
    """Character offsets of the prompt's own tokens (echo), as the response's text_offset counts them."""
    p = w.prompt
    offsets, _ = token_offsets([model.token_bytes(t) for t in p.tokens[p.echo_start:p.echo_end]])
    return offsets


def first_record(w: PromptWork, offsets: list[int]) -> TokenRecord | None:
    """Nothing precedes the first token of a context: it has no logprob."""
    if w.prompt.echo_start == 0 and w.prompt.echo_end > 0:
        return TokenRecord(w.prompt.tokens[0], None, None, None, offsets[0])
    return None


class PromptScorer:
    """Raw logprobs of a prompt's own tokens plus each row's top-k (echo logprobs)."""

    def __init__(self, ws: kernels.Workspace):
        self.ws = ws
        self._top_ids = np.zeros(5, np.int32)
        self._top_lps = np.zeros(5, np.float64)

    def score(self, row: np.ndarray, token: int, k: int, offset: int) -> TokenRecord:
        log_z = kernels.log_normalizer(row, self.ws.weights)
        kernels.top_logprobs(row, log_z, k, self._top_ids, self._top_lps)
        # in float64, as the kernel computes top_logprobs: a greedy token's logprob then equals its top entry
        return TokenRecord(token, float(row[token]) - log_z, self._top_ids[:k].copy(), self._top_lps[:k].copy(),
                           offset)


def warm_up(model: Model, ws: kernels.Workspace) -> None:
    """Load (or compile, once per machine) the kernels for the argument types the loop uses, so that the
    first request does not pay for it: logits rows are read-only views."""
    row = np.zeros(model.n_vocab, np.float32)
    row.flags.writeable = False
    plan = SamplingPlan(np.zeros(0, np.int32), np.zeros(0, np.float32), 0.0, 0.0, 1.0, 0.5, 0, 1)
    ChoiceSampler(plan, 0, model.n_vocab, 1).sample(row, ws)
    PromptScorer(ws).score(row, 0, 1, 0)
