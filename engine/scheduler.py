"""What each llama_decode holds: one token of every decoding sequence first, then chunks of admitted prompts
up to the step's token budget (chunked prefill, after vLLM v1 and llama.cpp's server). Pure bookkeeping: the
loop (loop.py) executes the plan. Requests join between steps and leave as soon as they finish.
"""
from __future__ import annotations

import itertools
import threading
from collections import deque
from dataclasses import dataclass, field

from .errors import CompletionError
from .slots import Slot, SlotPool
from .speculative import Speculation, choose_drafts
from .work import Candidate, PromptWork

SCORE_ROWS_BYTES = 64 << 20  # logits rows per step when every row is scored (echo): llama.cpp keeps the buffer


def score_chunk(n_vocab: int) -> int:
    """Prompt tokens per step when each one's logits row is kept: 256 at 49k vocab, 64 at 262k."""
    return max(16, min(256, SCORE_ROWS_BYTES // (4 * n_vocab)))


class Job:
    """One request on its way through the loop. Its ChoiceStates change only under `lock`, on the loop thread;
    readers take the same lock. `version` counts the steps that changed it."""

    _ids = itertools.count(1)

    def __init__(self, work: list[PromptWork], listener=None, chunks=None):
        self.id = next(self._ids)
        self.work = work
        self.chunks = chunks  # a stream's ChunkBuilder: chunks are cut per step, so they never depend on timing
        self.outbox: list[dict] = []
        self.lock = threading.Lock()
        self.changed = threading.Condition(self.lock)
        self.version = 0
        self.finished = False
        self.cancelled = False
        self.error: BaseException | None = None
        self.units: list[Unit] = []
        self._listener = listener

    def signal(self) -> None:
        """Called on the loop thread, lock held, after the job changed."""
        self.version += 1
        if self.chunks is not None:
            self.outbox.extend(self.chunks.take())
            if self.finished and self.error is None and not self.cancelled:
                self.outbox.extend(self.chunks.closing())
        self.changed.notify_all()
        if self._listener is not None:
            try:
                self._listener()
            except Exception:  # e.g. the caller's event loop is gone; the job is cancelled by its owner
                pass

    def wait(self) -> None:
        with self.lock:
            while not self.finished:
                self.changed.wait()


@dataclass(eq=False)
class Unit:
    """A prompt with up to n_seq_max of its candidates: admitted when that many slots are free, prefilled once
    into the first slot, then shared with the others' slots."""
    job: Job
    work: PromptWork
    candidates: list[Candidate]
    score: bool  # evaluate rows for the prompt's own tokens (the first unit of an echo-logprobs prompt)
    slots: list[Slot] = field(default_factory=list)
    done_tokens: int = 0  # prompt tokens whose KV cells the first slot holds
    phase: str = "waiting"  # waiting -> prefill -> decode -> done
    live: list[tuple[Candidate, Slot]] = field(default_factory=list)  # decoding candidates
    offsets: list[int] = field(default_factory=list)  # character offsets of the prompt's own tokens (echo)


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


@dataclass
class StepPlan:
    decode: list[tuple[Unit, Candidate, Slot]]
    prefill: list[tuple[Unit, int, int]]  # unit, first and end prompt positions evaluated now
    drafts: dict = field(default_factory=dict)  # Candidate -> draft tokens evaluated after its decode token


def split_units(job: Job, n_seq_max: int) -> list[Unit]:
    units = []
    for w in job.work:
        for k in range(0, len(w.candidates), n_seq_max):
            score = k == 0 and w.want_logprobs is not None
            units.append(Unit(job, w, w.candidates[k:k + n_seq_max], score))
    return units


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
