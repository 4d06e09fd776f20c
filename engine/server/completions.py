"""POST /v1/completions: the request body goes to the engine as it came (its validation names the parameter);
the answer is JSON, or server-sent events (`data: {chunk}` ... `data: [DONE]`) through sse-starlette.

Everything that can fail on the client's input fails before the first byte, as a JSON error with its status:
the engine validates before any model work, and a stream's first chunk is awaited before the SSE response
starts. Until then a client that disconnects has its request cancelled here; afterwards sse-starlette notices
the disconnect and cancels the generator, which cancels the engine request (within one engine step).
"""
from __future__ import annotations

import time

from sse_starlette.sse import EventSourceResponse
from starlette.requests import Request
from starlette.responses import Response

from ..errors import CompletionError
from ..wire import dumps
from .body import read_json_object
from .errors import ApiError, JsonResponse
from .limits import check_request_limits
from .logs import record
from .shutdown import ShuttingDown, deadline, past_deadline, race, shutting_down_error


class ClientGone(Exception):
    """The client disconnected before the response started."""


async def _disconnected(request: Request) -> None:
    """Returns once the client has gone (the body was read already, so the next message is the disconnect)."""
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return


async def until_disconnect(request: Request, awaitable, config):
    """Await `awaitable`, but cancel it (which cancels the engine request) if the client leaves first
    (ClientGone) or the shutdown timeout passes first (ShuttingDown)."""
    return await race(awaitable, {_disconnected(request): ClientGone(), deadline(config): ShuttingDown()})


def with_internal_usage(body: dict) -> tuple[dict, bool]:
    """Streams always ask the engine for usage (the log line and the prompt-token metric need it); when the
    client did not ask, the "usage" keys and the usage chunk are removed again, which leaves exactly the chunks
    the engine makes without include_usage. Shapes the engine would reject pass through untouched."""
    if body.get("stream") is not True:
        return body, False
    options = body.get("stream_options")
    if options is None or (isinstance(options, dict) and set(options) <= {"include_usage"}
                           and options.get("include_usage", False) is False):
        return {**body, "stream_options": {"include_usage": True}}, True
    return body, False


def _engine_error(e: BaseException, engine) -> ApiError:
    if isinstance(e, CompletionError):
        return ApiError.from_completion_error(e)
    if isinstance(e, RuntimeError) and "closed" in str(e):  # the engine closed: the server is shutting down
        return ApiError(503, "the server is shutting down", code="shutting_down", type="server_error",
                        headers={"Retry-After": "1"})
    raise e


class CompletionsRoute:
    def __init__(self, engine, config, metrics):
        self.engine, self.config, self.metrics = engine, config, metrics

    async def __call__(self, request: Request) -> Response:
        rec = record(request.scope)
        rec["route"] = "/v1/completions"
        body = await read_json_object(request, self.config.max_body_bytes)
        rec["stream"] = body.get("stream") is True
        if self.config.log_prompts:
            rec["prompt"] = body.get("prompt")
        if "self" in body:  # the one key Python's **kwargs cannot pass on
            raise ApiError(400, "unknown parameter(s): self", param="self", code="unknown_parameter")
        cfg = self.config
        try:
            check_request_limits(body, self.engine.model.n_vocab, cfg.max_prompts, cfg.max_sequences)
        except CompletionError as e:
            raise ApiError.from_completion_error(e) from None
        engine_body, strip_usage = with_internal_usage(body)
        try:
            result = await until_disconnect(request, self.engine.acreate_completion(**engine_body), cfg)
        except ClientGone:
            rec["client_gone"] = True
            return Response(status_code=499)
        except ShuttingDown:
            raise shutting_down_error() from None
        except (CompletionError, RuntimeError) as e:
            raise _engine_error(e, self.engine) from None
        if not rec["stream"]:
            self._finished(rec, result["usage"], [c["finish_reason"] for c in result["choices"]])
            rec["id"] = result["id"]
            return JsonResponse(result)
        return await self._stream(request, rec, result, strip_usage)

    def _finished(self, rec: dict, usage: dict | None, reasons: list) -> None:
        rec["finish_reasons"] = [r for r in reasons if r]
        for r in rec["finish_reasons"]:
            self.metrics.finished.labels(finish_reason=r).inc()
        if usage:
            rec["prompt_tokens"] = usage["prompt_tokens"]
            rec["completion_tokens"] = usage["completion_tokens"]
            self.metrics.prompt_tokens.inc(usage["prompt_tokens"])
            self.metrics.completion_tokens.inc(usage["completion_tokens"])

    async def _stream(self, request: Request, rec: dict, stream, strip_usage: bool) -> Response:
        try:
            first = await until_disconnect(request, stream.__anext__(), self.config)
        except ClientGone:
            rec["client_gone"] = True
            await stream.aclose()
            return Response(status_code=499)
        except ShuttingDown:
            await stream.aclose()
            raise shutting_down_error() from None
        except StopAsyncIteration:  # cannot happen (every choice ends with a chunk); an empty stream is valid
            first = None
        except (CompletionError, RuntimeError) as e:
            await stream.aclose()
            raise _engine_error(e, self.engine) from None
        rec["ttft"] = time.perf_counter() - rec["t0"]
        self.metrics.ttft.observe(rec["ttft"])
        if first is not None:
            rec["id"] = first["id"]
        state = {"usage": None, "reasons": []}

        def keep(chunk: dict) -> bool:
            """Note usage and finish reasons; False for the internal usage chunk."""
            for c in chunk["choices"]:
                if c.get("finish_reason"):
                    state["reasons"].append(c["finish_reason"])
            if chunk.get("usage") is not None:
                state["usage"] = chunk["usage"]
            if strip_usage:
                chunk.pop("usage", None)
                return bool(chunk["choices"])
            return True

        async def events():
            complete = False
            try:
                if first is not None and keep(first):
                    yield dumps(first).decode("utf-8")
                try:
                    async for chunk in stream:
                        if past_deadline(self.config):  # sse-starlette cuts the stream a second later
                            raise ShuttingDown
                        if keep(chunk):
                            yield dumps(chunk).decode("utf-8")
                except (CompletionError, RuntimeError, ShuttingDown) as e:  # after the first byte: an error event,
                    err = ApiError(500, str(e), type="server_error", code="engine_error")  # no [DONE]
                    if isinstance(e, CompletionError):
                        err = ApiError.from_completion_error(e)
                    elif isinstance(e, ShuttingDown) or "closed" in str(e):
                        err = shutting_down_error()
                    rec["error"] = err.code
                    yield dumps(err.body()).decode("utf-8")
                    return
                yield "[DONE]"
                complete = True
                self._finished(rec, state["usage"], state["reasons"])
            finally:
                if not complete:
                    rec.setdefault("finish_reasons", state["reasons"])
                    if self.config.shutting_down:
                        rec.setdefault("error", "cancelled_at_shutdown")
                    elif not rec.get("error"):
                        rec["client_gone"] = True
                await stream.aclose()

        return EventSourceResponse(events(), sep="\n", ping=self.config.sse_ping_s,
                                   # a second more than our own deadline, which ends the stream cleanly
                                   shutdown_event=None, shutdown_grace_period=self.config.shutdown_timeout_s + 1,
                                   headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
