"""Every error the server sends has SPEC.md's shape: {"error": {"message", "type", "param", "code"}}, built by
engine.errors.error_body (the one builder: batch output and Ray use it too) and encoded by engine.wire.dumps."""
from __future__ import annotations

from starlette.responses import Response

from ..errors import CompletionError, error_body
from ..wire import dumps


class ApiError(Exception):
    """An error response the server produces itself (bad body, auth, unknown route...). `message` and `param`
    are the clipped values the body carries."""

    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None,
                 type: str = "invalid_request_error", headers: dict | None = None):
        self._fields = error_body(message, type, param, code)["error"]  # clipped once, here
        super().__init__(self._fields["message"])
        self.status, self.code, self.type = status, code, type
        self.message, self.param = self._fields["message"], self._fields["param"]
        self.headers = headers or {}

    @classmethod
    def from_completion_error(cls, e: CompletionError) -> "ApiError":
        headers = {"Retry-After": "1"} if e.status in (429, 503) else None
        return cls(e.status, e.message, e.param, e.code, e.type, headers)

    def body(self) -> dict:
        return {"error": dict(self._fields)}

    def response(self) -> Response:
        return JsonResponse(self.body(), status_code=self.status, headers=self.headers)


class JsonResponse(Response):
    media_type = "application/json"

    def render(self, content) -> bytes:
        return dumps(content)
