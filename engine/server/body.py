"""Reading a request body: JSON only, bounded in size, parsed as plain data for the engine's own validation."""
from __future__ import annotations

import json

from starlette.requests import Request

from .errors import ApiError

JSON_TYPES = ("application/json",)


def _check_content_type(request: Request) -> None:
    """No Content-Type is read as JSON; anything else that is not JSON (a form, text/plain) is a 415."""
    raw = request.headers.get("content-type")
    if raw is None or not raw.strip():
        return
    media = raw.split(";", 1)[0].strip().lower()
    if media in JSON_TYPES or media.endswith("+json"):
        return
    raise ApiError(415, f"the request body must be JSON (Content-Type: application/json), got Content-Type {raw!r}",
                   code="unsupported_media_type")


async def read_body(request: Request, max_bytes: int) -> bytes:
    """The whole body, or a 413 as soon as it is known to exceed `max_bytes` (from Content-Length or while
    reading a chunked body)."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            size = int(declared)
        except ValueError:
            raise ApiError(400, f"invalid Content-Length header {declared!r}", code="invalid_request") from None
        if size > max_bytes:
            raise _too_large(size, max_bytes)
    chunks, total = [], 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > max_bytes:
            raise _too_large(total, max_bytes)
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(size: int, max_bytes: int) -> ApiError:
    return ApiError(413, f"the request body is {size} bytes or more; this server accepts at most {max_bytes} "
                         f"(--max-body-bytes)", code="request_too_large")


def _unpaired_surrogate(value) -> bool:
    """JSON may spell lone UTF-16 surrogates (\\ud800) that no UTF-8 text can hold."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return True
        return False
    if isinstance(value, list):
        return any(_unpaired_surrogate(v) for v in value)
    if isinstance(value, dict):
        return any(_unpaired_surrogate(k) or _unpaired_surrogate(v) for k, v in value.items())
    return False


async def read_json_object(request: Request, max_bytes: int) -> dict:
    """The body as a JSON object (dict of plain values), or an ApiError in SPEC.md's shape."""
    _check_content_type(request)
    raw = await read_body(request, max_bytes)
    try:
        text = raw.decode("utf-8")
        body = json.loads(text)
    except UnicodeDecodeError:
        raise ApiError(400, "the request body is not UTF-8 text", code="invalid_json") from None
    except json.JSONDecodeError as e:
        raise ApiError(400, f"the request body is not valid JSON: {e}", code="invalid_json") from None
    except RecursionError:
        raise ApiError(400, "the request body is nested too deeply", code="invalid_json") from None
    if not isinstance(body, dict):
        raise ApiError(400, f"the request body must be a JSON object, got {type(body).__name__}",
                       code="invalid_json")
    for key, value in body.items():
        if _unpaired_surrogate(key) or _unpaired_surrogate(value):
            param = key.encode("utf-8", "backslashreplace").decode("utf-8")
            raise ApiError(400, f"{param} contains an unpaired UTF-16 surrogate escape, which is not valid Unicode",
                           param=param, code="invalid_value")
    return body
