"""A window of requests in flight on one engine, answered in input order: what a batch job runs on
(engine/batch/runner.py, and through it Ray's replicas), and what an HTTP Batches API or chat can reuse. It
knows nothing of any file format: it takes entries (a request to submit, or an answer already made) and two
callbacks that turn a request's response or its CompletionError into that caller's answer.

No threads of its own: the caller's thread validates, tokenizes and queues each request (Engine.submit); the
engine loop wakes it when a request changes. A finished request waits only for its predecessors, and at most
`window` requests run and `BUFFER x window` answers wait, so memory does not grow with the input. A full
queue (503, engine_overloaded: other callers share the engine) is retried once a request of ours finishes, or
after a short back-off when none runs. A consumer that stops early (closes the iterator, or an exception
passes through it) cancels every request still running: nothing stays in the engine.
"""
from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, TypeVar

from .errors import CompletionError

BUFFER = 4  # finished answers kept waiting for a slow predecessor, per request in flight
OVERLOADED = "engine_overloaded"  # the code of a full queue: retried, never answered
BACK_OFF_S = 0.05  # the wait before retrying a full queue when none of our requests runs

Answer = TypeVar("Answer")


@dataclass(frozen=True)
class Request:
    """An entry to run: a non-streamed Completions body, and whatever the callbacks need to answer it."""
    body: dict
    tag: Any = None


@dataclass(frozen=True)
class Ready:
    """An entry answered already (say a line that is not a request): it keeps its place in the order."""
    answer: Any


_UNSET = object()


class _Pending:
    __slots__ = ("tag", "submission", "answer")

    def __init__(self, tag, submission=None, answer=_UNSET):
        self.tag, self.submission, self.answer = tag, submission, answer

    @property
    def done(self) -> bool:
        return self.answer is not _UNSET or (self.submission is not None and self.submission.finished)

    @property
    def running(self) -> bool:
        return self.submission is not None and not self.submission.finished


def default_window(engine) -> int:
    """Two requests in flight per slot: the next one is queued (and tokenized) when a slot frees."""
    return 2 * engine.n_seq_max


def in_order(engine, entries: Iterable[Request | Ready], answer: Callable[[Any, dict], Answer],
             refuse: Callable[[Any, CompletionError], Answer], window: int | None = None) -> Iterator[Answer]:
    """Yield one answer per entry, in order: `answer(tag, response)` for a request that ran,
    `refuse(tag, error)` for one the engine refused (CompletionError, at submission or while it ran; a
    CompletionError that `answer` raises is refused too), a Ready's own answer. At most `window` requests
    (default 2 x engine.n_seq_max) run at once. Raises RuntimeError when the engine fails (the answers yielded
    so far are good), and whatever reading `entries` raises; either way nothing of ours stays in the engine.
    Only non-streamed requests: a body with stream true is refused (param "stream")."""
    window = window or default_window(engine)
    if window < 1:
        raise CompletionError(f"window must be >= 1, got {window}", param="window")
    changed = threading.Event()  # set on the engine loop thread after each step that changed one of ours
    pending: deque[_Pending] = deque()

    def running() -> int:
        return sum(1 for p in pending if p.running)

    def wait_for_room() -> None:
        while running() >= window or (len(pending) >= BUFFER * window and not pending[0].done):
            changed.clear()
            if running() < window and (len(pending) < BUFFER * window or pending[0].done):
                return
            changed.wait()

    def submit(req: Request) -> _Pending:
        if req.body.get("stream") is True:
            return _Pending(req.tag, answer=refuse(req.tag, CompletionError("stream is not available here",
                                                                             param="stream")))
        while True:
            try:
                return _Pending(req.tag, engine.submit(req.body, changed.set))
            except CompletionError as e:
                if e.code != OVERLOADED:
                    return _Pending(req.tag, answer=refuse(req.tag, e))
            if running() == 0:  # someone else fills the queue: back off a little
                changed.wait(BACK_OFF_S)
            else:
                changed.clear()
                changed.wait()

    def settle(p: _Pending):
        if p.answer is _UNSET:
            try:
                p.answer = answer(p.tag, p.submission.result())
            except CompletionError as e:
                p.answer = refuse(p.tag, e)
        return p.answer

    def finished_heads() -> Iterator[Answer]:
        while pending and pending[0].done:
            yield settle(pending.popleft())

    try:
        for entry in entries:
            if isinstance(entry, Ready):
                pending.append(_Pending(None, answer=entry.answer))
            else:
                wait_for_room()
                pending.append(submit(entry))
            yield from finished_heads()
        while pending:
            if not pending[0].done:
                changed.clear()
                if not pending[0].done:
                    changed.wait()
            yield from finished_heads()
    finally:  # closed early (an error, a consumer that stopped): nothing stays in the engine
        for p in pending:
            if p.running:
                p.submission.cancel()
