"""The one thread that owns the model: takes submitted, cancelled and `call`ed work between steps; each step
asks the scheduler for a plan, runs it as one llama_decode (every running sequence plus prompt chunks), samples
and scores the rows, and hands the StepOutput back to the scheduler, which updates the requests and wakes
their callers (step.py has the step's data types).

Callers on any thread (or asyncio task) submit a Job (through Engine.submit) and read its states under the
job's lock; a cancelled job leaves within one step. A sequence's logits do not depend on its neighbours
(per-sequence KV streams) and its draws depend only on (seed, candidate, step), so a response is the same bytes
alone or beside others.
"""
from __future__ import annotations

import atexit
import os
import threading
import weakref
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable

import kernels

from .job import Job
from .model import Model
from .rows import PromptScorer, sample_rows, warm_up
from .scheduler import Scheduler
from .slots import SlotPool
from .speculative import Speculation
from .step import LastPromptRow, RowOwner, SampleRow, ScoreRow, StepOutput, StepPlan

_live_loops: "weakref.WeakSet[EngineLoop]" = weakref.WeakSet()


@atexit.register
def _stop_all_loops() -> None:
    # Registered after model.py's handler, so it runs first: no decode is running when models are freed.
    for loop in list(_live_loops):
        loop.close()


@dataclass(frozen=True, eq=False)
class Call:
    """Model code to run on the loop thread once no request is running (EngineLoop.call)."""
    fn: Callable[[], Any]
    done: Future = field(default_factory=Future)


class EngineLoop:
    def __init__(self, model: Model, prefix_cache: bool = True, step_tokens: int | None = None,
                 max_queue: int = 64, sample_threads: int | None = None, max_slots: int | None = None,
                 speculation: Speculation | None = None):
        """`max_slots` above the model's current sequence count lets the pool grow on demand (the context is
        re-created with more sequences once the running requests finish)."""
        self.model = model
        self.pool = SlotPool(model, prefix_cache)
        self.scheduler = Scheduler(self.pool, step_tokens or 512, max_queue, max_slots, speculation=speculation)
        threads = sample_threads or min(4, os.cpu_count() or 1)
        self.workspaces = [kernels.Workspace(model.n_vocab) for _ in range(threads)]
        self._executor = ThreadPoolExecutor(threads - 1, thread_name_prefix="sampler") if threads > 1 else None
        self.scorer = PromptScorer(self.workspaces[0])
        warm_up(model, self.workspaces[0])
        self._cv = threading.Condition()
        self._incoming: deque[Job] = deque()
        self._cancelled: set[Job] = set()
        self._reset_requested = False
        self._calls: deque[Call] = deque()  # run on this thread when idle
        self._closed = False
        self._waiting_jobs = 0  # published by the loop thread under _cv, read by submit
        self._stats: dict = {}
        self._idle = True
        self._publish()
        self._thread = threading.Thread(target=self._run, name="engine-loop", daemon=True)
        self._thread.start()
        _live_loops.add(self)

    # ---- any thread -------------------------------------------------------------------------------

    def submit(self, job: Job) -> Job:
        with self._cv:
            if self._closed:
                raise RuntimeError("the engine is closed")
            self.scheduler.check_room(self._waiting_jobs + len(self._incoming))
            self._incoming.append(job)
            self._cv.notify()
        return job

    def cancel(self, job: Job) -> None:
        """Free the job's sequences at the next step (a no-op once it finished)."""
        with self._cv:
            if not job.finished:
                job.cancelled = True
                self._cancelled.add(job)
                self._cv.notify()

    def reset_prefix_cache(self) -> None:
        """Forget every cached prefix (slots in use keep theirs until they are freed); returns once done."""
        with self._cv:
            self._reset_requested = True
            self._cv.notify()
            while self._reset_requested and not self._closed:
                self._cv.wait()

    def call(self, fn):
        """Run `fn()` on the loop thread once no request is running, and return its result. For code that
        drives the model directly (benchmarks' bare loops): llama.cpp's CPU backend keeps an OpenMP thread
        team per calling thread, and with two teams alive on a machine with few cores both throttle their
        spin-waiting, which made every decode step about 1.5x slower (measured on 2 cores)."""
        if threading.current_thread() is self._thread:
            return fn()
        call = Call(fn)
        with self._cv:
            if self._closed:
                raise RuntimeError("the engine is closed")
            self._calls.append(call)
            self._cv.notify()
        return call.done.result()

    @property
    def thread_ident(self) -> int | None:
        """The loop thread's ident: the one thread that runs llama_decode (tests check it)."""
        return self._thread.ident

    def is_alive(self) -> bool:
        """False once the loop thread ended (closed, or died): a health check's question."""
        return self._thread.is_alive()

    def stats(self) -> dict:
        """As of the end of the last step (the loop publishes it)."""
        with self._cv:
            return dict(self._stats, queued=self._waiting_jobs + len(self._incoming))

    def step_log(self) -> list:
        return self.scheduler.records()

    def _publish(self) -> None:
        """Loop thread: the figures other threads may read."""
        sched = self.scheduler
        stats = {"running": len(sched.running_jobs()), "tokens_generated": sched.tokens_generated,
                 "slots": self.pool.usage(), "memory": self.model.memory(),
                 "prompt_tokens": self.pool.prompt_tokens, "prompt_tokens_cached": self.pool.prompt_tokens_cached}
        if sched.speculation is not None:
            stats["speculative"] = {"draft_runs": sched.spec_runs, "drafted": sched.spec_drafted,
                                    "accepted": sched.spec_accepted}
        with self._cv:
            self._waiting_jobs = self.scheduler.queued_jobs()
            self._stats = stats
            self._idle = self.scheduler.idle()
            self._cv.notify_all()

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Until no request is running, queued or being cancelled (False on timeout)."""
        with self._cv:
            return self._cv.wait_for(lambda: self._closed or (self._idle and not self._incoming
                                                              and not self._cancelled), timeout)

    def close(self) -> None:
        with self._cv:
            if self._closed:
                return
            self._closed = True
            self._cv.notify_all()
        if threading.current_thread() is not self._thread:
            self._thread.join()
        if self._executor is not None:
            self._executor.shutdown(wait=True)

    # ---- the loop thread ----------------------------------------------------------------------------

    def _run(self) -> None:
        sched = self.scheduler
        while True:
            with self._cv:
                while not self._closed and not self._incoming and not self._cancelled and sched.idle() \
                        and not self._reset_requested and not self._calls:
                    self._cv.wait()
                if self._closed:
                    break
                incoming, self._incoming = list(self._incoming), deque()
                cancelled, self._cancelled = self._cancelled, set()
                if self._reset_requested:
                    self.pool.reset()
                    self._reset_requested = False
                    self._cv.notify_all()
            for job in incoming:
                sched.add(job)
            for job in cancelled:
                sched.end_job(job)
            if not sched.idle():
                self._step()
            elif self._calls:
                self._run_calls()
            self._publish()
        for job in list(sched.running_jobs()) + [u.job for u in sched.waiting] + list(self._incoming):
            sched.end_job(job, RuntimeError("the engine was closed"))
        for call in self._calls:
            call.done.set_exception(RuntimeError("the engine was closed"))

    def _run_calls(self) -> None:
        with self._cv:
            calls, self._calls = list(self._calls), deque()
        for call in calls:
            try:
                call.done.set_result(call.fn())
            except BaseException as e:  # handed to the caller
                call.done.set_exception(e)

    def _step(self) -> None:
        sched = self.scheduler
        admitted = sched.admit()
        plan = sched.plan(admitted)
        if not plan.decode and not plan.prefill:
            return
        try:
            rows, owners = self._decode(plan)
            output = self._sample_and_score(rows, owners, plan)
        except Exception as e:  # a failed decode: its requests fail
            sched.fail_step(plan, e)
            return
        sched.update_from_output(plan, output)

    def _decode(self, plan: StepPlan) -> tuple[Any, list[RowOwner]]:
        """One llama_decode: a token of every decoding candidate (followed by its draft tokens, if any), then
        prompt chunks. `owners[i]` says what flagged row i is for."""
        tokens, positions, seqs, flags, owners = [], [], [], [], []
        for u, c, s in plan.decode:
            run = [c.last, *plan.drafts.get(c, ())]
            tokens.extend(run)
            positions.extend(range(c.pos, c.pos + len(run)))
            seqs.extend([s.seq] * len(run))
            flags.extend([True] * len(run))
            owners.extend([SampleRow(u, c)] * len(run))
        for u, a, b in plan.prefill:
            p = u.work.prompt
            n = len(p.tokens)
            lo, hi = (max(p.echo_start - 1, 0), p.echo_end - 1) if u.score else (n, n)
            seq = u.slots[0].seq
            for i in range(a, b):
                tokens.append(p.tokens[i])
                positions.append(i)
                seqs.append(seq)
                if lo <= i < hi:
                    flags.append(True)
                    owners.append(ScoreRow(u, i))
                elif i == n - 1:
                    flags.append(True)
                    owners.append(LastPromptRow(u))
                else:
                    flags.append(False)
        rows = self.model.decode(tokens, positions, seqs, flags)
        return rows, owners

    def _sample_and_score(self, rows, owners: list[RowOwner], plan: StepPlan) -> StepOutput:
        """Every draw of this step, keyed by candidate (longer than one when draft tokens were accepted), and
        every prompt token scored (echo logprobs), keyed by unit, in prompt order."""
        work, runs, scores = [], {}, {}
        for row, owner in zip(rows, owners):
            if isinstance(owner, SampleRow):
                c = owner.candidate
                if c not in runs:
                    runs[c] = []
                    work.append((c, runs[c], plan.drafts.get(c, ())))
                runs[c].append(row)
            elif isinstance(owner, LastPromptRow):
                work.extend((c, [row], ()) for c in owner.unit.candidates if c.state.max_new > 0)
            else:  # the row at position scores the prompt token at position + 1
                u, pos = owner.unit, owner.position
                p = u.work.prompt
                scores.setdefault(u, []).append(self.scorer.score(row, p.tokens[pos + 1], u.work.want_logprobs,
                                                                  u.offsets[pos + 1 - p.echo_start]))
        return StepOutput(sample_rows(work, self.workspaces, self._executor), scores)
