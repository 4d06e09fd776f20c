"""The decoder loop: prefill -> per-step sampling of every live choice in one llama_decode -> finish.

No JSON here: it advances ChoiceStates and records prompt logprobs; completion.py builds responses.
Choices run in waves of at most n_seq_max sequences. Each sequence has its own KV stream, so its logits do
not depend on what else is in the batch, and its draws depend only on (seed, candidate, step): waves and
batch composition never change a result.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

import kernels

from .choice import ChoiceState
from .detok import token_offsets
from .logprobs import TokenRecord
from .model import Model
from .prompts import PromptInput
from .sampler import ChoiceSampler

PREFILL_CHUNK = 256  # prompt tokens per llama_decode when every position's logits are needed (echo logprobs)


@dataclass
class Candidate:
    prompt: PromptInput
    state: ChoiceState
    sampler: ChoiceSampler
    seq: int = -1
    pos: int = 0  # position of `last` in the sequence
    last: int = -1  # the most recent sampled token, to be decoded next


@dataclass
class PromptWork:
    prompt: PromptInput
    candidates: list[Candidate]
    want_logprobs: int | None  # echo with logprobs: top-k for the prompt's own tokens
    records: list[TokenRecord] | None = field(default=None)  # filled on first prefill


def plan_waves(work: list[PromptWork], n_seq_max: int) -> list[list[tuple[PromptWork, list[Candidate]]]]:
    """Group candidates (prompt-major) into waves of at most n_seq_max sequences. Each sequence has a KV
    stream of its own, and validation already made every prompt + max_tokens fit one."""
    waves, current, size = [], [], 0
    for w in work:
        group: list[Candidate] = []
        for c in w.candidates:
            if size == n_seq_max:
                if group:
                    current.append((w, group))
                waves.append(current)
                current, group, size = [], [], 0
            group.append(c)
            size += 1
        if group:
            current.append((w, group))
    if current:
        waves.append(current)
    return waves


def _common_prefix(a: list[int], b) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


class Decoder:
    """Runs requests on a model. With prefix_cache, sequence 0 keeps the KV cells of the last tokens it
    evaluated (a prompt and what its first choice generated) and the next prompt evaluates only what
    differs from them: logits are the same as a cold run because a row does not depend on the batch."""

    def __init__(self, model: Model, workspace: kernels.Workspace, prefix_cache: bool = True):
        self.model = model
        self.ws = workspace
        self.prefix_cache = prefix_cache
        self.cached: list[int] = []  # tokens whose KV cells sequence 0 holds, at positions 0..len-1
        self._top_ids = np.zeros(5, np.int32)
        self._top_lps = np.zeros(5, np.float64)

    def warm_up(self) -> None:
        """Load (or compile, once per machine) the kernels for the argument types the loop uses, so that the
        first request does not pay for it: logits rows are read-only views."""
        row = np.zeros(self.model.n_vocab, np.float32)
        row.flags.writeable = False
        empty_i, empty_f = np.zeros(0, np.int32), np.zeros(0, np.float32)
        ws = self.ws
        kernels.sample_step(row, ws.work, ws.weights, ws.ids_scratch, ws.blocks, empty_i, empty_f, empty_i,
                            empty_i, 0, 0.0, 0.0, 1.0, 0.5, kernels.seed_to_u64(0), 0, 0, 1, self._top_ids,
                            self._top_lps)
        self._score(row, 0, 1)

    def run(self, work: list[PromptWork]) -> Iterator[None]:
        """Advance every candidate to its finish; yields after each prefill and each decode step."""
        for seq in range(1, self.model.n_seq_max):  # only sequence 0 may carry anything between requests
            self.model.seq_remove(seq)
        if self.model.seq_pos_max(0) != len(self.cached) - 1:  # someone used the model directly
            self.forget()
        for wave in plan_waves(work, self.model.n_seq_max):
            yield from self._run_wave(wave)

    # ---- one wave ---------------------------------------------------------------------------------

    def _run_wave(self, wave) -> Iterator[None]:
        model = self.model
        next_seq = 0
        used: list[int] = []
        try:
            for w, group in wave:
                for c in group:
                    c.seq = next_seq
                    next_seq += 1
                    used.append(c.seq)
            if len(wave) > 1 and self._fits_one_batch(wave):
                self._prefill_together(wave)
                yield
            else:
                for w, group in wave:
                    self._prefill(w, group)
                    yield
            live = [c for _, group in wave for c in group if not c.state.finished]
            self._release_finished(wave)
            while live:
                rows = model.decode([c.last for c in live], [c.pos for c in live], [c.seq for c in live],
                                    np.ones(len(live), bool))
                for i, c in enumerate(live):
                    if c.seq == 0:
                        self.cached.append(c.last)
                    self._sample(c, rows[i])
                    c.pos += 1
                live = [c for c in live if not c.state.finished]
                self._release_finished(wave)
                yield
        except BaseException:
            self.forget()  # an interrupted decode may leave sequence 0 out of step with `cached`
            raise
        finally:
            for seq in used:  # nothing of this request stays in the KV cache, even on error or early close
                if seq != 0 or not self.prefix_cache:
                    model.seq_remove(seq)
            if not self.prefix_cache:
                self.cached = []

    def forget(self) -> None:
        """Drop the cached prefix."""
        self.model.seq_remove(0)
        self.cached = []

    def _release_finished(self, wave) -> None:
        for _, group in wave:
            for c in group:
                if c.state.finished and c.seq > 0:
                    self.model.seq_remove(c.seq)
                    c.seq = -1

    def _fits_one_batch(self, wave) -> bool:
        return (not any(w.want_logprobs is not None and w.records is None for w, _ in wave)
                and sum(len(w.prompt.tokens) for w, _ in wave) <= self.model.n_batch)

    def _prefill_together(self, wave) -> None:
        """Several prompts (no echo scoring) in one llama_decode, each into its first candidate's sequence."""
        tokens, positions, seqs, flags = [], [], [], []
        for w, group in wave:
            t = w.prompt.tokens
            start = self._claim(group[0].seq, t, score=False)
            tokens.extend(t[start:])
            positions.extend(range(start, len(t)))
            seqs.extend([group[0].seq] * (len(t) - start))
            flags.extend([False] * (len(t) - start - 1) + [True])
        rows = self.model.decode(tokens, positions, seqs, flags)
        for k, (w, group) in enumerate(wave):
            self._first_tokens(group, rows[k])
        for w, group in wave:
            self._share_prompt(group)

    def _claim(self, seq: int, tokens, score: bool) -> int:
        """Prepare `seq` for `tokens`; return how many leading tokens are already in its KV cells."""
        start = 0
        if seq == 0 and self.prefix_cache and not score:  # reuse the cached prefix; keep >= 1 token to decode
            start = min(_common_prefix(self.cached, tokens), len(tokens) - 1)
            self.model.seq_remove(0, start, -1)
        else:
            self.model.seq_remove(seq)
        if seq == 0:
            self.cached = list(tokens)
        return start

    def _share_prompt(self, group: list[Candidate]) -> None:
        for c in group[1:]:
            if not c.state.finished:
                self.model.seq_copy(group[0].seq, c.seq)

    def _prefill(self, w: PromptWork, group: list[Candidate]) -> None:
        """Evaluate the prompt once (into the first candidate's sequence), score its tokens when echo asks,
        sample every candidate's first token from the last row, then share the prompt's KV cells."""
        model = self.model
        tokens = w.prompt.tokens
        n = len(tokens)
        seq = group[0].seq
        score = w.want_logprobs is not None and w.records is None
        start = self._claim(seq, tokens, score)
        records: list[tuple[int, tuple]] = []  # (position of the scored token, score)
        # Rows needed: position i-1 scores the prompt token at i (echo), and n-1 gives the first new token.
        lo = max(w.prompt.echo_start - 1, 0) if score else n - 1
        hi = w.prompt.echo_end - 1 if score else n - 1
        chunk = PREFILL_CHUNK if score else n
        last_row = None
        for a in range(start, n, chunk):
            b = min(a + chunk, n)
            pos = np.arange(a, b)
            flags = ((pos >= lo) & (pos < hi)) | (pos == n - 1)
            rows = model.decode(tokens[a:b], pos, np.full(b - a, seq), flags)
            for r, p in enumerate(pos[flags]):
                if score and lo <= p < hi:
                    records.append((p + 1, self._score(rows[r], tokens[p + 1], w.want_logprobs)))
                if p == n - 1:
                    last_row = rows[r]
            if b == n:
                self._first_tokens(group, last_row)
        if score:
            w.records = self._prompt_records(w, records)
        self._share_prompt(group)

    def _first_tokens(self, group: list[Candidate], row) -> None:
        n = len(group[0].prompt.tokens)
        for c in group:
            c.pos = n
            if c.state.max_new == 0:
                c.state.finish_without_tokens()
            else:
                self._sample(c, row)

    def _sample(self, c: Candidate, row) -> None:
        token, logprob = c.sampler.sample(row, self.ws)
        k = c.sampler.plan.n_top
        top = (c.sampler.top_ids[:k], c.sampler.top_lps[:k]) if k >= 0 else (None, None)
        c.state.push(token, self.model.token_bytes(token), token in self.model.eog_tokens, logprob, *top)
        c.last = token

    def _score(self, row, token: int, k: int) -> tuple[int, float, np.ndarray, np.ndarray]:
        """Raw logprob of `token` under `row`, plus the row's top-k (echo logprobs of the prompt)."""
        log_z = kernels.log_normalizer(row, self.ws.weights)
        kernels.top_logprobs(row, log_z, k, self._top_ids, self._top_lps)
        return token, float(row[token] - log_z), self._top_ids[:k].copy(), self._top_lps[:k].copy()

    def _prompt_records(self, w: PromptWork, scored: list[tuple[int, tuple]]) -> list[TokenRecord]:
        p = w.prompt
        own = p.tokens[p.echo_start:p.echo_end]
        offsets, _ = token_offsets([self.model.token_bytes(t) for t in own])
        by_position = dict(scored)
        records = []
        for i, t in enumerate(own):
            s = by_position.get(p.echo_start + i)
            if s is None:  # nothing precedes the first token of the context: no logprob
                records.append(TokenRecord(t, None, None, None, offsets[i]))
            else:
                records.append(TokenRecord(t, s[1], s[2], s[3], offsets[i]))
        return records
