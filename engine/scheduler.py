"""The scheduler owns what every step holds and what it did (after vLLM v1's Scheduler): `add`/`remove`
requests, `admit` and `plan` a step (one token of every decoding sequence first, then chunks of admitted prompts
up to the step's token budget: chunked prefill, as vLLM v1 and llama.cpp's server do), and
`update_from_output`, the one place a step's draws and scores reach the requests (under each Job's lock, then
the job's waiters are signalled). It runs on the loop thread only; the loop (loop.py) executes the plan.
Requests join between steps and leave as soon as they finish.
"""
from __future__ import annotations

import threading
from collections import deque

from .errors import CompletionError
from .job import Job, Unit, split_units
from .rows import first_record, prompt_offsets, push_sample
from .slots import Slot, SlotPool
from .speculative import Speculation, choose_drafts
from .step import StepOutput, StepPlan, StepRecord
from .work import Candidate

SCORE_ROWS_BYTES = 64 << 20  # logits rows per step when every row is scored (echo): llama.cpp keeps the buffer


def score_chunk(n_vocab: int) -> int:
    """Prompt tokens per step when each one's logits row is kept: 256 at 49k vocab, 64 at 262k."""
    return max(16, min(256, SCORE_ROWS_BYTES // (4 * n_vocab)))


class Scheduler:
    def __init__(self, pool: SlotPool, step_tokens: int, max_queue: int, max_slots: int | None = None,
                 log_size: int = 512, speculation: Speculation | None = None):
        self.max_slots = max_slots or len(pool.slots)
        if step_tokens <= self.max_slots:
            raise ValueError(f"step_tokens ({step_tokens}) must exceed the number of slots ({self.max_slots})")
        self.pool = pool
        self.step_tokens = step_tokens
        # Prompt tokens per step while some sequence decodes. On a CPU a 508-token chunk held 4 running streams
        # up for 2.8 s, 128-token chunks for 0.8 s, and the whole 2,000-token prefill took 5% longer (measured
        # on SmolLM2, 2 cores). A GPU prefills a full chunk in milliseconds.
        self.chunk_while_decoding = step_tokens if pool.model.on_gpu else min(step_tokens, 128)
        self.score_chunk = score_chunk(pool.model.n_vocab)
        self.max_queue = max_queue
        self.speculation = speculation
        self.waiting: deque[Unit] = deque()
        self.active: list[Unit] = []
        self._log: deque[StepRecord] = deque(maxlen=log_size)
        self._log_lock = threading.Lock()  # read from other threads
        self.tokens_generated = 0
        self.spec_runs = self.spec_drafted = self.spec_accepted = 0  # steps' draft runs, tokens sent, accepted

    # ---- requests in and out ------------------------------------------------------------------------

    def queued_jobs(self) -> int:
        return len({u.job for u in self.waiting})

    def records(self) -> list[StepRecord]:
        with self._log_lock:
            return list(self._log)

    def check_room(self, queued: int) -> None:
        """A full queue is refused at once (never a hang)."""
        if queued >= self.max_queue:
            raise CompletionError(f"the engine's queue is full ({self.max_queue} requests waiting); retry later",
                                  code="engine_overloaded", status=503)

    def add(self, job: Job) -> None:
        job.units = split_units(job, self.max_slots)
        self.waiting.extend(job.units)

    def remove(self, job: Job) -> None:
        """Take a job out (cancelled or failed): its slots are freed at once; their cells stay a valid prefix."""
        self.waiting = deque(u for u in self.waiting if u.job is not job)
        for u in [u for u in self.active if u.job is job]:
            self.active.remove(u)
            for s in u.slots:
                if s.busy:
                    self.pool.release(s)
            u.phase = "done"

    def end_job(self, job: Job, error: BaseException | None = None) -> None:
        """Take a job out and wake its waiters (cancelled: no error; failed or closed: `error`)."""
        self.remove(job)
        job.end(error)

    def fail_step(self, plan: StepPlan, error: BaseException) -> None:
        """A failed decode: its requests fail, and their slots' cells are unknown now (dropped, not cached)."""
        for job in {u.job for u, _, _ in plan.decode} | {u.job for u, _, _ in plan.prefill}:
            for u in job.units:
                for s in u.slots:
                    if s.busy:
                        self.pool.drop(s)
            self.end_job(job, error)

    def running_jobs(self) -> set[Job]:
        return {u.job for u in self.active}

    def idle(self) -> bool:
        return not self.waiting and not self.active

    # ---- one step -----------------------------------------------------------------------------------

    def admit(self) -> list[Unit]:
        """First come, first served: the queue's head is admitted when enough slots are free."""
        admitted = []
        while self.waiting:
            need = len(self.waiting[0].candidates)
            if self.pool.n_free() < need:
                if len(self.pool.slots) == self.max_slots or self.active:
                    break  # wait for slots to free up (or, to grow the pool, for the running ones to finish)
                self.pool.grow(min(self.max_slots, max(2 * len(self.pool.slots), need)))
                continue
            u = self.waiting.popleft()
            u.slots, u.done_tokens = self.pool.take(u.work.prompt.tokens, len(u.candidates), reuse=not u.score)
            u.phase = "prefill"
            if u.score:  # character offsets of the prompt's own tokens, for their echo records
                u.offsets = prompt_offsets(self.pool.model, u.work)
            self.active.append(u)
            admitted.append(u)
        return admitted

    def plan(self, admitted: list[Unit]) -> StepPlan:
        decode = [(u, c, s) for u in self.active if u.phase == "decode" for c, s in u.live]
        budget = min(self.step_tokens, self.pool.model.n_batch) - len(decode)
        if decode:
            budget = min(budget, self.chunk_while_decoding)
        prefill = []
        for u in self.active:
            if u.phase != "prefill" or budget <= 0:
                continue
            n = len(u.work.prompt.tokens)
            chunk = min(n - u.done_tokens, budget, self.score_chunk if u.score else budget)
            prefill.append((u, u.done_tokens, u.done_tokens + chunk))
            budget -= chunk
        width = len(decode) + sum(b - a for _, a, b in prefill)
        drafts = self._drafts(decode, width) if self.speculation is not None else {}
        record = StepRecord(tuple((u.job.id, s.seq) for u, _, s in decode),
                            tuple((u.job.id, u.slots[0].seq, b - a) for u, a, b in prefill),
                            tuple(sorted({u.job.id for u in admitted})),
                            tuple((u.job.id, s.seq, len(drafts[c])) for u, c, s in decode if c in drafts))
        with self._log_lock:
            self._log.append(record)
        return StepPlan(decode, prefill, drafts)

    def _drafts(self, decode, width: int) -> dict:
        """Each decoding sequence's proposal (always made: an unsent one is still checked against the token the
        step samples), then how much of it the step carries: within the batch, and only what pays."""
        spec = self.speculation
        entries = []
        for u, c, s in decode:
            if c.constraint is not None:  # its next row's mask depends on the token drawn before it
                continue
            if c.drafts is None:
                c.drafts = spec.start(list(c.prompt.tokens) + [c.last])
            # every draft row is sampled, so a run never samples past max_tokens
            cap = min(spec.draft_max, c.state.max_new - c.state.n_generated - 1)
            entries.append((c, c.drafts, c.drafts.propose(cap)))
        room = min(self.step_tokens, self.pool.model.n_batch) - width
        chosen = choose_drafts(entries, width, room, self.pool.model.on_gpu, spec.adaptive)
        return {c: c.drafts.proposal[:n] for c, n in chosen.items()}

    def finish_unit_if_done(self, u: Unit) -> None:
        if u.phase == "decode" and not u.live:
            u.phase = "done"
            self.active.remove(u)

    # ---- a step's results ---------------------------------------------------------------------------

    def update_from_output(self, plan: StepPlan, output: StepOutput) -> None:
        """Record what the step did, request by request under its lock: cells now held, prompt scores, sampled
        tokens; free the sequences that finished; then wake each touched request's waiters once."""
        touched: dict[Job, tuple[list, list]] = {}
        for u, c, s in plan.decode:
            touched.setdefault(u.job, ([], []))[0].append((u, c, s))
        for u, a, b in plan.prefill:
            touched.setdefault(u.job, ([], []))[1].append((u, a, b))
        for job, (decoded, prefilled) in touched.items():
            with job.lock:
                for u, c, s in decoded:
                    self._decoded(u, c, s, plan.drafts.get(c, ()), output.draws[c])
                for u, a, b in prefilled:
                    self._prefilled(u, a, b, output)
                if all(u.phase == "done" for u in job.units):
                    job.finished = True
                job.signal()

    def _decoded(self, u: Unit, c: Candidate, s: Slot, draft, run) -> None:
        """The step evaluated [c.last, *draft] at c.pos...: take the sampled run up to where the choice ends
        (a stop string, max_tokens or an end-of-generation token inside an accepted run ends it there, as it
        would have one token at a time), and remove the cells of draft tokens that did not become the text."""
        model = self.pool.model
        first = c.last
        pushed = 0
        for draw in run:
            push_sample(model, c, draw)
            pushed += 1
            if c.state.finished:
                break
        # the cells now valid: the old last token and the drafts that equal the tokens taken before the new last
        s.tokens.append(first)
        s.tokens.extend(draft[:pushed - 1])
        c.pos += pushed
        if len(draft) > pushed - 1:
            model.seq_remove(s.seq, c.pos, -1)
        self.tokens_generated += pushed
        if c.drafts is not None:
            c.drafts.observe([d.token for d in run[:pushed]])
            if draft:
                self.spec_runs += 1
                self.spec_drafted += len(draft)
                self.spec_accepted += len(run) - 1
        if c.state.finished:
            u.live.remove((c, s))
            self.pool.release(s)
            self.finish_unit_if_done(u)

    def _prefilled(self, u: Unit, a: int, b: int, output: StepOutput) -> None:
        p = u.work.prompt
        first = u.slots[0]
        first.tokens.extend(p.tokens[a:b])
        u.done_tokens = b
        if u.score:
            if u.work.records is None:
                head = first_record(u.work, u.offsets)
                u.work.records = [head] if head is not None else []
            u.work.records.extend(output.scores.get(u, ()))
        if b < len(p.tokens):
            return
        for c in u.candidates:
            c.pos = len(p.tokens)
            if c.state.max_new == 0:
                c.state.finish_without_tokens()
            else:
                push_sample(self.pool.model, c, output.draws[c][0])
                self.tokens_generated += 1
        u.live = []
        for c, s in zip(u.candidates, u.slots):
            if s is not first and not c.state.finished:
                self.pool.copy_prompt(first, s)
            if c.state.finished:
                self.pool.release(s)
            else:
                u.live.append((c, s))
        u.phase = "decode"
        self.finish_unit_if_done(u)
