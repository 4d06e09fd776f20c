"""What a streaming request returns: an iterator (threads) or async iterator (asyncio) of chunks, fed by the
engine loop through a Submission. Closing it, dropping it unreferenced, or cancelling the task that awaits it
cancels the request within one step."""
from __future__ import annotations

import asyncio

from .submission import Submission


class _ChunkSource:
    """The loop cuts the request's chunks at every step; this hands them out in order."""

    def __init__(self, submission: Submission):
        self._submission = submission
        self._pending: list[dict] = []
        self._seen = 0
        self._done = False

    def _collect(self) -> None:
        """Move what the loop produced since the last call into `_pending` (raises the request's error)."""
        self._seen = self._submission.version
        chunks, finished = self._submission.take_chunks()
        self._pending.extend(chunks)
        if finished:
            self._done = True

    def _cancel(self) -> None:
        if not self._done:
            self._done = True
            self._submission.cancel()

    def __del__(self):
        try:
            self._cancel()
        except Exception:
            pass


class CompletionStream(_ChunkSource):
    """`for chunk in engine.create_completion(..., stream=True)`."""

    def __iter__(self):
        return self

    def __next__(self) -> dict:
        while not self._pending:
            if self._done:
                raise StopIteration
            try:
                self._submission.wait_change(self._seen)
                self._collect()
            except BaseException:
                self._cancel()
                raise
        return self._pending.pop(0)

    def close(self) -> None:
        self._cancel()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class AsyncCompletionStream(_ChunkSource):
    """`async for chunk in await engine.acreate_completion(..., stream=True)`."""

    def __init__(self, submission: Submission, event: asyncio.Event):
        super().__init__(submission)
        self._event = event

    def __aiter__(self):
        return self

    async def __anext__(self) -> dict:
        while not self._pending:
            if self._done:
                raise StopAsyncIteration
            try:
                await wait_for_change(self._submission, self._event, self._seen)
                self._collect()
            except BaseException:  # CancelledError included: the request leaves the engine
                self._cancel()
                raise
        return self._pending.pop(0)

    async def aclose(self) -> None:
        self._cancel()


async def wait_for_change(submission: Submission, event: asyncio.Event, seen: int) -> None:
    """Until the loop changed the request past version `seen` (or finished it). `event` is set by the
    submission's on_change listener, from the loop thread."""
    while True:
        event.clear()
        if submission.version != seen or submission.finished:
            return
        await event.wait()
