"""A request queued in the engine (`Engine.submit`): the one handle every caller holds, whether it waits
(create_completion), streams (streams.py), keeps a window in flight (in_flight.py: batch files, Ray) or
serves HTTP. It hides the loop's Job: callers read `finished`, `result()` and `take_chunks()`, and `cancel()`.
"""
from __future__ import annotations

from typing import Callable

from .job import Job


class Submission:
    def __init__(self, job: Job, loop, respond: Callable[[], dict]):
        self._job = job
        self._loop = loop
        self._respond = respond  # builds the response from the finished work (completion.py)

    @property
    def finished(self) -> bool:
        """True once the request left the engine: answered, failed or cancelled."""
        return self._job.finished

    @property
    def version(self) -> int:
        """Counts the engine steps that changed this request (a stream waits for it to move)."""
        return self._job.version

    def wait(self, timeout: float | None = None) -> bool:
        """Block until finished (False if `timeout` passed first)."""
        job = self._job
        with job.lock:
            return job.changed.wait_for(lambda: job.finished, timeout)

    def wait_change(self, seen: int) -> None:
        """Block until the request moved past version `seen` or finished."""
        job = self._job
        with job.lock:
            job.changed.wait_for(lambda: job.version != seen or job.finished)

    def result(self) -> dict:
        """The response dict once finished (waits for it); raises the request's error (CompletionError, or
        RuntimeError when the engine failed or closed). A wait interrupted (KeyboardInterrupt) cancels it."""
        try:
            self.wait()
        except BaseException:
            self.cancel()
            raise
        if self._job.error is not None:
            raise self._job.error
        return self._respond()

    def take_chunks(self) -> tuple[list[dict], bool]:
        """A stream's chunks cut since the last call, and whether it has ended; raises the request's error
        once it ended with one. Never blocks."""
        job = self._job
        with job.lock:
            chunks = list(job.outbox)
            job.outbox.clear()
            if job.finished and job.error is not None:
                raise job.error
            return chunks, job.finished

    def cancel(self) -> None:
        """Free the request's sequences at the next step (a no-op once it finished)."""
        self._loop.cancel(self._job)
