"""Every error the server sends has SPEC.md's shape: {"error": {"message", "type", "param", "code"}}."""
from __future__ import annotations

import json

from starlette.responses import Response

from ..errors import CompletionError

# Messages often quote what the client sent (a value, a key, a path); a 10 MB value must not come back whole.
MESSAGE_HEAD, MESSAGE_TAIL = 360, 120  # the tail usually says the allowed range; the head names the parameter
PARAM_CHARS = 100


def clip(text: str, head: int = MESSAGE_HEAD, tail: int = MESSAGE_TAIL) -> str:
    """At most head + tail characters of `text` (plus a marker saying how many were left out)."""
    if len(text) <= head + tail:
        return text
    return f"{text[:head]}…[{len(text) - head - tail} characters left out]…{text[-tail:] if tail else ''}"


class ApiError(Exception):
    """An error response the server produces itself (bad body, auth, unknown route...)."""

    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None,
                 type: str = "invalid_request_error", headers: dict | None = None):
        message = clip(message)
        param = None if param is None else clip(str(param), PARAM_CHARS, 0)
        super().__init__(message)
        self.status, self.message, self.param, self.code, self.type = status, message, param, code, type
        self.headers = headers or {}

    @classmethod
    def from_completion_error(cls, e: CompletionError) -> "ApiError":
        headers = {"Retry-After": "1"} if e.status in (429, 503) else None
        return cls(e.status, e.message, e.param, e.code, e.type, headers)

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}

    def response(self) -> Response:
        return JsonResponse(self.body(), status_code=self.status, headers=self.headers)


def dumps(obj) -> bytes:
    """Compact JSON; never fails on what the engine returns (a -inf logprob becomes -Infinity, as Python's json
    and the openai client read it; a string that cannot be UTF-8 falls back to ASCII escapes)."""
    text = json.dumps(obj, ensure_ascii=False, allow_nan=True, separators=(",", ":"))
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(obj, ensure_ascii=True, allow_nan=True, separators=(",", ":")).encode("ascii")


class JsonResponse(Response):
    media_type = "application/json"

    def render(self, content) -> bytes:
        return dumps(content)


# Status codes the server produces outside the engine, with their OpenAI-style codes.
NOT_FOUND = "not_found"
METHOD_NOT_ALLOWED = "method_not_allowed"
