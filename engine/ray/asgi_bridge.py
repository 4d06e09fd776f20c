"""One HTTP request carried over a Ray Serve deployment handle: the ingress replica reads the request (scope
and body) and hands it to an engine replica, which runs the server's own ASGI app on it and streams the ASGI
messages that app sends back; the ingress replays them to its client.

Why not let Serve's proxy call the engine replicas directly (`@serve.ingress(create_app(engine))`)? The proxy
picks a replica before it has read the body, so a request router there never sees the prompt, and prefix-aware
routing needs the prompt. A handle call carries the body, so the router on the engine deployment's handle
(engine/ray/prefix_router.py) sees it, as in Ray Serve LLM, whose OpenAI ingress calls its LLM servers the same
way.

Faults: when the engine replica dies (or Serve cannot reach one), the client gets a 503 JSON error before the
response started, or an SSE error event (the shape the server sends for errors mid-stream) after; never a
traceback or a hang. A client that disconnects cancels the handle call, which cancels the engine request.
"""
from __future__ import annotations

import asyncio
import logging

from ..errors import error_body
from ..wire import dumps

LOGGER = logging.getLogger("sampling_engine.ray")

# What a replica forwards of the ASGI scope: plain data only (the scope may hold objects that do not pickle).
SCOPE_KEYS = ("type", "asgi", "http_version", "method", "scheme", "path", "raw_path", "root_path", "query_string",
              "headers", "client", "server")
REPLICA_HEADER = b"x-sampling-engine-replica"


def portable_scope(scope: dict) -> dict:
    out = {k: scope[k] for k in SCOPE_KEYS if k in scope}
    out["headers"] = [(bytes(k), bytes(v)) for k, v in scope.get("headers", [])]
    out["client"] = tuple(out["client"]) if out.get("client") else None
    out["server"] = tuple(out["server"]) if out.get("server") else None
    out["root_path"] = ""  # the engine app is mounted at / on the engine replica, as in `serve`
    return out


async def read_body(receive, max_bytes: int) -> tuple[bytes, bool]:
    """The request body, but no more than `max_bytes` + 1 bytes of it (the engine app answers 413 on seeing one
    byte too many); and whether the client left while it was being read."""
    chunks, total = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return b"".join(chunks), True
        chunk = message.get("body", b"")
        if total <= max_bytes:
            chunks.append(chunk[: max_bytes + 1 - total])
        total += len(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks), False


def declared_too_large(scope: dict, max_bytes: int) -> bool:
    """Content-Length says the body exceeds the limit: forward no body; the engine app answers 413 from the
    header, as `serve` does, and nothing is buffered here."""
    for k, v in scope.get("headers", []):
        if k.lower() == b"content-length":
            try:
                return int(v) > max_bytes
            except ValueError:
                return False
    return False


async def run_asgi(app, scope: dict, body: bytes, replica_tag: str):
    """Engine replica: run `app` on one buffered request; yield lists of the ASGI messages it sends (a list per
    yield: whatever accumulated while the previous one travelled). When the caller stops iterating (the client
    left, the ingress was cancelled), the app is told `http.disconnect` and then cancelled if it does not end."""
    out: asyncio.Queue = asyncio.Queue()
    gone = asyncio.Event()
    body_sent = False

    async def receive():
        nonlocal body_sent
        if not body_sent:
            body_sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await gone.wait()
        return {"type": "http.disconnect"}

    async def send(message):
        if message["type"] == "http.response.start":
            headers = list(message.get("headers", []))
            headers.append((REPLICA_HEADER, replica_tag.encode("ascii", "replace")))
            message = {**message, "headers": headers}
        await out.put(message)

    async def run():
        try:
            await app(dict(scope), receive, send)
        finally:
            await out.put(None)

    task = asyncio.ensure_future(run())
    try:
        while True:
            message = await out.get()
            batch = []
            while message is not None:
                batch.append(message)
                if out.empty():
                    break
                message = out.get_nowait()
            if batch:
                yield batch
            if message is None:
                break
        await task  # the app's own exceptions (its handlers answer every error, so none is expected)
    finally:
        if not task.done():
            gone.set()
            try:
                await asyncio.wait_for(asyncio.shield(task), 5.0)
            except BaseException:
                task.cancel()


def failure_body(e: BaseException) -> dict:
    if type(e).__name__ == "BackPressureError":  # Serve's queue for the engine replicas is full as well
        return error_body("every replica's queue is full; retry later", "server_error", code="engine_overloaded")
    return error_body(f"the replica serving this request failed ({type(e).__name__}); retry", "server_error",
                      code="replica_unavailable")


async def send_failure(e: BaseException, send, started: bool = False, sse: bool = False) -> None:
    """End the response cleanly: a 503 JSON error before it started, an SSE error event after (a stream), else
    the end of the body."""
    body = dumps(failure_body(e))
    if not started:
        await send({"type": "http.response.start", "status": 503,
                    "headers": [(b"content-type", b"application/json"), (b"retry-after", b"1"),
                                (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body, "more_body": False})
    elif sse:
        await send({"type": "http.response.body", "body": b"data: " + body + b"\n\n", "more_body": False})
    else:
        await send({"type": "http.response.body", "body": b"", "more_body": False})


async def replay(messages, send) -> None:
    """Ingress: send the engine replica's ASGI messages on to the client; if the replica fails, end the response
    cleanly (send_failure)."""
    started, sse, finished = False, False, False
    try:
        async for batch in messages:
            for m in batch:
                if m["type"] == "http.response.start":
                    started = True
                    sse = any(k.lower() == b"content-type" and v.startswith(b"text/event-stream")
                              for k, v in m.get("headers", []))
                elif m["type"] == "http.response.body" and not m.get("more_body", False):
                    finished = True
                await send(m)
    except asyncio.CancelledError:
        raise
    except Exception as e:  # noqa: BLE001: a dead or unreachable replica, whatever Ray calls it
        LOGGER.warning(f"engine replica failed mid-request: {type(e).__name__}: {str(e)[:300]}")
        if not finished:
            await send_failure(e, send, started, sse)
