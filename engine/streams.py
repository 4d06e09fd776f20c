"""What a streaming request returns: an iterator (threads) or async iterator (asyncio) of chunks, fed by the
engine loop. Closing it, dropping it unreferenced, or cancelling the task that awaits it cancels the request
within one step."""
from __future__ import annotations

import asyncio

from .scheduler import Job


class _ChunkSource:
    """The loop cuts the job's chunks at every step (Job.outbox); this hands them out in order."""

    def __init__(self, job: Job, loop):
        self._job = job
        self._loop = loop
        self._pending: list[dict] = []
        self._seen = 0
        self._done = False

    def _collect(self) -> None:
        """Lock held by the caller: move what the loop produced since the last call into `_pending`."""
        job = self._job
        self._seen = job.version
        self._pending.extend(job.outbox)
        job.outbox.clear()
        if job.finished:
            self._done = True
            if job.error is not None:
                raise job.error

    def _cancel(self) -> None:
        if not self._done:
            self._done = True
            self._loop.cancel(self._job)

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
            job = self._job
            try:
                with job.lock:
                    while job.version == self._seen and not job.finished:
                        job.changed.wait()
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

    def __init__(self, job: Job, loop, event: asyncio.Event):
        super().__init__(job, loop)
        self._event = event

    def __aiter__(self):
        return self

    async def __anext__(self) -> dict:
        while not self._pending:
            if self._done:
                raise StopAsyncIteration
            try:
                await wait_for_change(self._job, self._event, self._seen)
                with self._job.lock:
                    self._collect()
            except BaseException:  # CancelledError included: the request leaves the engine
                self._cancel()
                raise
        return self._pending.pop(0)

    async def aclose(self) -> None:
        self._cancel()


async def wait_for_change(job: Job, event: asyncio.Event, seen: int) -> None:
    """Until the loop changed the job past version `seen` (or finished it)."""
    while True:
        event.clear()
        with job.lock:
            if job.version != seen or job.finished:
                return
        await event.wait()
