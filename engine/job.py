"""A request on its way through the engine loop: the Job callers wait on, and its Units (a prompt with up to
n_seq_max of its candidates), which the scheduler admits, steps and finishes."""
from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass, field

from .slots import Slot
from .work import Candidate, PromptWork


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

    def end(self, error: BaseException | None = None) -> None:
        """Loop thread: the job leaves the engine (cancelled, failed, or the engine closed), unless it already
        finished."""
        with self.lock:
            if not self.finished:
                self.error = error
                self.finished = True
                self.signal()


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


def split_units(job: Job, n_seq_max: int) -> list[Unit]:
    units = []
    for w in job.work:
        for k in range(0, len(w.candidates), n_seq_max):
            score = k == 0 and w.want_logprobs is not None
            units.append(Unit(job, w, w.candidates[k:k + n_seq_max], score))
    return units
