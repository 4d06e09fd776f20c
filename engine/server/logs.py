"""One log line per request on stderr: id, method, path, status, times, and for completions the token counts,
time to first token and finish reasons. Prompt text only with --log-prompts."""
from __future__ import annotations

import itertools
import json
import logging
import sys
import time

LOGGER = logging.getLogger("sampling_engine.server")
SCOPE_KEY = "sampling_engine.request"  # the per-request record routes fill in (a dict in the ASGI scope)
_ids = itertools.count(1)


def setup_logging() -> None:
    """Our lines go to stderr as they are; called by `serve`, never at import (embedding apps keep control)."""
    if not any(getattr(h, "_sampling_engine", False) for h in LOGGER.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%Y-%m-%dT%H:%M:%S"))
        handler._sampling_engine = True
        LOGGER.addHandler(handler)
    LOGGER.setLevel(logging.INFO)
    LOGGER.propagate = False


def record(scope) -> dict:
    """The request's log record (created by the middleware; a fresh dict when the app runs without it)."""
    return scope.setdefault(SCOPE_KEY, {})


def _fmt_s(v) -> str:
    return "-" if v is None else f"{v:.3f}s"


class RequestLogMiddleware:
    """Pure ASGI: wraps `send` to see the status, logs once the app has returned (for a stream: after its last
    byte, or after the client left), and counts the request in the metrics."""

    def __init__(self, app, metrics=None, log_prompts: bool = False):
        self.app, self.metrics, self.log_prompts = app, metrics, log_prompts

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        rec = {"req": f"req-{next(_ids)}", "t0": time.perf_counter()}
        scope[SCOPE_KEY] = rec
        status = {"code": None}

        async def send_wrapper(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        except Exception:
            if status["code"] is None:
                status["code"] = 500
            raise
        finally:
            self._log(scope, rec, status["code"])

    def _log(self, scope, rec: dict, code) -> None:
        total = time.perf_counter() - rec["t0"]
        if rec.get("client_gone"):
            shown = "499"  # nginx's "client closed request": the response was cut short (or never sent)
        else:
            shown = str(code) if code is not None else "-"
        path = scope.get("path", "")
        if len(path) > 200:  # a path is the client's text too: bounded in the log
            path = path[:200] + "…"
        parts = [rec.get("id") or rec["req"], scope.get("method", ""), path, shown]
        if "stream" in rec:
            parts += ["stream" if rec["stream"] else "json",
                      f"prompt_tokens={rec.get('prompt_tokens', '-')}",
                      f"completion_tokens={rec.get('completion_tokens', '-')}",
                      f"ttft={_fmt_s(rec.get('ttft'))}"]
        parts.append(f"total={_fmt_s(total)}")
        if "finish_reasons" in rec:
            parts.append("finish=" + (",".join(rec["finish_reasons"]) or "-"))
        if rec.get("error"):
            parts.append(f"error={rec['error']}")
        if self.log_prompts and "prompt" in rec:
            parts.append("prompt=" + json.dumps(rec["prompt"], ensure_ascii=True))
        LOGGER.info(" ".join(parts))
        if self.metrics is not None:
            route = rec.get("route", "other")
            self.metrics.requests.labels(route=route, status=shown).inc()
            if "stream" in rec and code == 200 and not rec.get("client_gone"):
                self.metrics.e2e.observe(total)
