"""Engine.run_batch: a window of requests in flight on the engine's continuous batching, answers in input order.

No threads of its own: the caller's thread validates and tokenizes each line and queues it (Engine._submit);
the engine loop wakes this thread when a request finishes. A finished line waits only for its predecessors,
and at most `window` requests run and `BUFFER x window` answers wait, so memory does not grow with the input.
"""
from __future__ import annotations

import threading
from collections import deque
from typing import Iterable, Iterator

from ..errors import CompletionError
from .lines import BatchRequest, Ids, LineError, completed, custom_id_of, line_error, parse, refused

BUFFER = 4  # finished answers kept waiting for a slow predecessor, per request in flight


class _Pending:
    __slots__ = ("req", "job", "finish", "answer")

    def __init__(self, req, job=None, finish=None, answer=None):
        self.req, self.job, self.finish, self.answer = req, job, finish, answer

    @property
    def done(self) -> bool:
        return self.answer is not None or (self.job is not None and self.job.finished)


def run_batch(engine, lines: Iterable, stable_ids: bool = False, window: int | None = None,
              first_line: int = 1, check_duplicates: bool = True) -> Iterator[dict]:
    """Yield one output line per input line (blank text lines are skipped but counted), in order. Raises
    RuntimeError when the engine fails (the lines yielded so far are good), CompletionError on a duplicate
    custom_id (unless the caller checked them already: check_duplicates=False)."""
    if check_duplicates and isinstance(lines, (list, tuple)):  # a list is checked before any work
        dup = unique_custom_ids(lines)
        if dup is not None:
            raise CompletionError(f"custom_id {dup!r} appears twice; custom_ids must be unique", param="custom_id",
                                  code="duplicate_custom_id")
    ids = Ids(stable_ids)
    window = window or 2 * engine.loop.scheduler.max_slots
    if window < 1:
        raise CompletionError(f"window must be >= 1, got {window}", param="window")
    changed = threading.Event()
    seen: set[str] = set()
    pending: deque[_Pending] = deque()

    def running() -> int:
        return sum(1 for p in pending if p.job is not None and not p.job.finished)

    def wait_for_room() -> None:
        while running() >= window or (len(pending) >= BUFFER * window and not pending[0].done):
            changed.clear()
            if running() < window and (len(pending) < BUFFER * window or pending[0].done):
                return
            changed.wait()

    def submit(req: BatchRequest) -> _Pending:
        while True:
            try:  # changed.set runs on the engine loop thread after each step that changed the job
                job, finish = engine._submit(req.body, changed.set)
                return _Pending(req, job, finish)
            except CompletionError as e:
                if e.code != "engine_overloaded":
                    return _Pending(req, answer=refused(ids, req, e))
            if running() == 0:  # someone else fills the queue: back off a little
                changed.wait(0.05)
            else:
                changed.clear()
                changed.wait()

    def answer(p: _Pending) -> dict:
        if p.answer is None:
            try:
                p.answer = completed(ids, p.req, p.finish())
            except CompletionError as e:
                p.answer = refused(ids, p.req, e)
        return p.answer

    def finished_heads() -> Iterator[dict]:
        while pending and pending[0].done:
            yield answer(pending.popleft())

    try:
        line_no = first_line - 1
        for raw in lines:
            line_no += 1
            if isinstance(raw, (str, bytes)) and not raw.strip():
                continue
            req = parse(raw, line_no)
            if check_duplicates and isinstance(req, (BatchRequest, LineError)) and req.custom_id is not None:
                if req.custom_id in seen:
                    raise CompletionError(f"custom_id {req.custom_id!r} (line {line_no}) appears twice; custom_ids "
                                          f"must be unique", param="custom_id", code="duplicate_custom_id")
                seen.add(req.custom_id)
            if isinstance(req, LineError):
                pending.append(_Pending(req, answer=line_error(ids, req)))
            else:
                wait_for_room()
                pending.append(submit(req))
            yield from finished_heads()
        while pending:
            if not pending[0].done:
                changed.clear()
                if not pending[0].done:
                    changed.wait()
            yield from finished_heads()
    finally:  # closed early (an error, a consumer that stopped): nothing stays in the engine
        for p in pending:
            if p.job is not None and not p.job.finished:
                engine.loop.cancel(p.job)


def unique_custom_ids(lines: Iterable) -> str | None:
    """The first custom_id that appears twice, or None (set memory grows with the input: for lists)."""
    seen: set[str] = set()
    for raw in lines:
        cid = custom_id_of(raw)
        if cid is not None:
            if cid in seen:
                return cid
            seen.add(cid)
    return None
