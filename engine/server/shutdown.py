"""Requests in flight when the server is told to stop get --shutdown-timeout seconds; then each ends with a
503 `shutting_down` (a JSON error, or a stream's last event before a clean end) rather than a cut connection."""
from __future__ import annotations

import asyncio
import time

from .errors import ApiError


class ShuttingDown(Exception):
    """The shutdown timeout passed while the request was still running."""


async def deadline(config) -> None:
    """Returns once shutdown was asked for and its timeout has passed (counted from the signal)."""
    while not config.shutting_down:
        await asyncio.sleep(0.25)
    start = config.shutdown_at or time.monotonic()
    await asyncio.sleep(max(0.0, start + config.shutdown_timeout_s - time.monotonic()))


def past_deadline(config) -> bool:
    """The check a running stream makes between chunks (no task per chunk: streams are the hot path)."""
    return config.shutting_down and time.monotonic() >= (config.shutdown_at or 0.0) + config.shutdown_timeout_s


def shutting_down_error() -> ApiError:
    return ApiError(503, "the server is shutting down", code="shutting_down", type="server_error",
                    headers={"Retry-After": "1"})


async def race(awaitable, stoppers: dict):
    """Await `awaitable` unless one of `stoppers` (coroutine -> exception) finishes first: then cancel it (which
    cancels the engine request) and raise that stopper's exception."""
    task = asyncio.ensure_future(awaitable)
    watchers = {asyncio.ensure_future(c): exc for c, exc in stoppers.items()}
    try:
        done, _ = await asyncio.wait({task, *watchers}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in watchers:
            w.cancel()
        if not task.done():
            task.cancel()
            try:
                await task
            except BaseException:
                pass
    if task in done:
        return task.result()
    raise next(exc for w, exc in watchers.items() if w in done)
