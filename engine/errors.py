"""The one error type of the API (SPEC.md, Errors), the model-file error, and the one builder of OpenAI's error
body, `{"error": {"message", "type", "param", "code"}}`: the server's responses and SSE error events, a batch
line's refused body, Ray's failure answers and the command line's `--json` errors all come from `error_body`
(encode it with engine.wire.dumps)."""
from __future__ import annotations

# Messages often quote what the client sent (a value, a key, a path); a 10 MB value must not come back whole.
MESSAGE_HEAD, MESSAGE_TAIL = 360, 120  # the tail usually says the allowed range; the head names the parameter
PARAM_CHARS = 100  # a param is a name: its head only


def clip(text: str, head: int = MESSAGE_HEAD, tail: int = MESSAGE_TAIL) -> str:
    """At most head + tail characters of `text` (plus a marker saying how many were left out)."""
    if len(text) <= head + tail:
        return text
    return f"{text[:head]}…[{len(text) - head - tail} characters left out]…{text[-tail:] if tail else ''}"


def error_body(message: str, type: str = "invalid_request_error", param: str | None = None,
               code: str | None = None) -> dict:
    """OpenAI's error body, `{"error": {"message", "type", "param", "code"}}`, with a long message clipped to
    its first MESSAGE_HEAD and last MESSAGE_TAIL characters and a long param to its first PARAM_CHARS (a param
    that is not a string is written as its str)."""
    param = None if param is None else clip(str(param), PARAM_CHARS, 0)
    return {"error": {"message": clip(message), "type": type, "param": param, "code": code}}


class CompletionError(Exception):
    """An invalid request: carries OpenAI's error fields. The server maps it to HTTP `status`."""

    type = "invalid_request_error"

    def __init__(self, message: str, param: str | None = None, code: str | None = None, status: int = 400):
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code
        self.status = status

    def body(self) -> dict:
        """The error body the server sends with `status` (error_body: message and param clipped)."""
        return error_body(self.message, self.type, self.param, self.code)


class ModelFileError(CompletionError):
    """A model file that is missing, corrupt, or not GGUF, found before llama.cpp touches it."""

    def __init__(self, message: str):
        super().__init__(message, param="model", code="model_file_invalid", status=400)
