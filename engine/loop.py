"""The one thread that owns the model: admits requests between steps, runs one llama_decode per step for every
running sequence (plus prompt chunks), samples the rows, and wakes the callers whose requests changed.

Callers on any thread (or asyncio task) submit a Job and read its states under the job's lock; a cancelled
job leaves within one step. A sequence's logits do not depend on its neighbours (per-sequence KV streams) and
its draws depend only on (seed, candidate, step), so a response is the same bytes alone or beside others.
"""
from __future__ import annotations

import atexit
import os
import threading
import weakref
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor

import kernels

from .model import Model
from .rows import PromptScorer, push_sample, sample_rows, warm_up
from .scheduler import Job, Scheduler, StepPlan, Unit
from .slots import SlotPool
from .speculative import Speculation

_live_loops: "weakref.WeakSet[EngineLoop]" = weakref.WeakSet()


@atexit.register
def _stop_all_loops() -> None:
    # Registered after model.py's handler, so it runs first: no decode is running when models are freed.
    for loop in list(_live_loops):
        loop.close()


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
        self.scorer = PromptScorer(model, self.workspaces[0])
        warm_up(model, self.workspaces[0])
        self._cv = threading.Condition()
        self._incoming: deque[Job] = deque()
        self._cancelled: set[Job] = set()
        self._reset_requested = False
        self._calls: deque[tuple] = deque()  # (fn, Future): run on this thread when idle
        self._closed = False
        self.tokens_generated = 0
        self.spec_runs = self.spec_drafted = self.spec_accepted = 0  # steps' draft runs, tokens sent, accepted
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
        done: Future = Future()
        with self._cv:
            if self._closed:
                raise RuntimeError("the engine is closed")
            self._calls.append((fn, done))
            self._cv.notify()
        return done.result()

    def stats(self) -> dict:
        """As of the end of the last step (the loop publishes it)."""
        with self._cv:
            return dict(self._stats, queued=self._waiting_jobs + len(self._incoming))

    def step_log(self) -> list:
        return self.scheduler.records()

    def _publish(self) -> None:
        """Loop thread: the figures other threads may read."""
        stats = {"running": len(self.scheduler.running_jobs()), "tokens_generated": self.tokens_generated,
                 "slots": self.pool.usage(), "memory": self.model.memory(),
                 "prompt_tokens": self.pool.prompt_tokens, "prompt_tokens_cached": self.pool.prompt_tokens_cached}
        if self.scheduler.speculation is not None:
            stats["speculative"] = {"draft_runs": self.spec_runs, "drafted": self.spec_drafted,
                                    "accepted": self.spec_accepted}
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
                self._end(job)
            if not sched.idle():
                self._step()
            elif self._calls:
                self._run_calls()
            self._publish()
        for job in list(sched.running_jobs()) + [u.job for u in sched.waiting] + list(self._incoming):
            self._end(job, RuntimeError("the engine was closed"))
        for _, done in self._calls:
            done.set_exception(RuntimeError("the engine was closed"))

    def _run_calls(self) -> None:
        with self._cv:
            calls, self._calls = list(self._calls), deque()
        for fn, done in calls:
            try:
                done.set_result(fn())
            except BaseException as e:  # handed to the caller
                done.set_exception(e)

    def _end(self, job: Job, error: BaseException | None = None) -> None:
        self.scheduler.remove(job)
        with job.lock:
            if not job.finished:
                job.error = error
                job.finished = True
                job.signal()

    def _step(self) -> None:
        sched = self.scheduler
        admitted = sched.admit()
        plan = sched.plan(admitted)
        if not plan.decode and not plan.prefill:
            return
        try:
            rows, owners = self._decode(plan)
            draws = self._sample_all(rows, owners, plan)
        except Exception as e:  # a failed decode: its requests fail, their slots' cells are unknown now
            for job in {u.job for u, _, _ in plan.decode} | {u.job for u, _, _ in plan.prefill}:
                for u in job.units:
                    for s in u.slots:
                        if s.busy:
                            self.pool.drop(s)
                self._end(job, e)
            return
        self._apply(plan, rows, owners, draws)

    def _decode(self, plan: StepPlan):
        """One llama_decode: a token of every decoding candidate (followed by its draft tokens, if any), then
        prompt chunks. `owners[i]` says what flagged row i is for: ("sample", unit, candidate) (a candidate's
        draft rows follow its own), ("score", unit, position) or ("last", unit)."""
        tokens, positions, seqs, flags, owners = [], [], [], [], []
        for u, c, s in plan.decode:
            run = [c.last, *plan.drafts.get(c, ())]
            tokens.extend(run)
            positions.extend(range(c.pos, c.pos + len(run)))
            seqs.extend([s.seq] * len(run))
            flags.extend([True] * len(run))
            owners.extend([("sample", u, c)] * len(run))
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
                    owners.append(("score", u, i))
                elif i == n - 1:
                    flags.append(True)
                    owners.append(("last", u))
                else:
                    flags.append(False)
        rows = self.model.decode(tokens, positions, seqs, flags)
        return rows, owners

    def _sample_all(self, rows, owners, plan: StepPlan) -> dict:
        """Every draw of this step, keyed by candidate: a list of (token, logprob, top_ids, top_lps), longer
        than one when draft tokens were accepted."""
        work, runs = [], {}
        for i, owner in enumerate(owners):
            if owner[0] == "sample":
                c = owner[2]
                if c not in runs:
                    runs[c] = []
                    work.append((c, runs[c], plan.drafts.get(c, ())))
                runs[c].append(rows[i])
            elif owner[0] == "last":
                work.extend((c, [rows[i]], ()) for c in owner[1].candidates if c.state.max_new > 0)
        return sample_rows(work, self.workspaces, self._executor)

    def _apply(self, plan: StepPlan, rows, owners, draws) -> None:
        """Record what the step did: cells now held, prompt scores, sampled tokens; free finished sequences."""
        touched: dict[Job, list] = {}
        for u, c, s in plan.decode:
            touched.setdefault(u.job, []).append(("decode", u, c, s))
        scores: dict[Unit, list] = {}
        for i, owner in enumerate(owners):
            if owner[0] == "score":
                u, pos = owner[1], owner[2]
                scores.setdefault(u, []).append((pos, rows[i]))
        for u, a, b in plan.prefill:
            touched.setdefault(u.job, []).append(("prefill", u, a, b))
        for job, events in touched.items():
            with job.lock:
                for event in events:
                    if event[0] == "decode":
                        _, u, c, s = event
                        self._decoded(c, s, plan.drafts.get(c, ()), draws[c])
                        if c.state.finished:
                            u.live.remove((c, s))
                            self.pool.release(s)
                            self.scheduler.finish_unit_if_done(u)
                    else:
                        _, u, a, b = event
                        self._prefilled(u, a, b, scores.get(u, []), draws)
                if all(u.phase == "done" for u in job.units):
                    job.finished = True
                job.signal()

    def _decoded(self, c, s, draft, run) -> None:
        """The step evaluated [c.last, *draft] at c.pos...: take the sampled run up to where the choice ends
        (a stop string, max_tokens or an end-of-generation token inside an accepted run ends it there, as it
        would have one token at a time), and remove the cells of draft tokens that did not become the text."""
        first = c.last
        pushed = 0
        for token, logprob, top_ids, top_lps in run:
            push_sample(self.model, c, token, logprob, top_ids, top_lps)
            pushed += 1
            if c.state.finished:
                break
        # the cells now valid: the old last token and the drafts that equal the tokens taken before the new last
        s.tokens.append(first)
        s.tokens.extend(draft[:pushed - 1])
        c.pos += pushed
        if len(draft) > pushed - 1:
            self.model.seq_remove(s.seq, c.pos, -1)
        self.tokens_generated += pushed
        if c.drafts is not None:
            c.drafts.observe([t for t, _, _, _ in run[:pushed]])
            if draft:
                self.spec_runs += 1
                self.spec_drafted += len(draft)
                self.spec_accepted += len(run) - 1

    def _prefilled(self, u: Unit, a: int, b: int, scored, draws) -> None:
        p = u.work.prompt
        first = u.slots[0]
        first.tokens.extend(p.tokens[a:b])
        u.done_tokens = b
        if u.score:
            if u.work.records is None:
                u.offsets = self.scorer.offsets(u.work)
                head = self.scorer.first_record(u.work, u.offsets)
                u.work.records = [head] if head is not None else []
            for pos, row in scored:  # row at pos scores the prompt token at pos + 1
                own = pos + 1 - p.echo_start
                u.work.records.append(self.scorer.score(row, p.tokens[pos + 1], u.work.want_logprobs,
                                                        u.offsets[own]))
        if b < len(p.tokens):
            return
        for c in u.candidates:
            c.pos = len(p.tokens)
            if c.state.max_new == 0:
                c.state.finish_without_tokens()
            else:
                push_sample(self.model, c, *draws[c][0])
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
        self.scheduler.finish_unit_if_done(u)
