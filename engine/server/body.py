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


# A real request nests three levels deep (body > prompt > token list); anything far deeper is an attack on
# recursive code further on (repr, validation), so it stops here.
MAX_DEPTH = 16


class _DuplicateKey(Exception):
    def __init__(self, key: str):
        self.key = key


def _no_duplicates(pairs: list) -> dict:
    """json's object hook: {"n": 1, "n": 99} is two answers to one question (which one a proxy or a log
    reader takes differs), so it is refused, not silently resolved to the last."""
    out = dict(pairs)
    if len(out) != len(pairs):
        seen = set()
        for key, _ in pairs:
            if key in seen:
                raise _DuplicateKey(key)
            seen.add(key)
    return out


def _printable(text: str) -> str:
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _check_values(body: dict) -> None:
    """Iteratively (no recursion to exhaust): nesting depth, and lone UTF-16 surrogates (JSON may spell
    \\ud800, which no UTF-8 text can hold), reported under the top-level parameter that holds them."""
    for param, value in body.items():
        stack = [(param, 1), (value, 1)]
        while stack:
            item, depth = stack.pop()
            if depth > MAX_DEPTH:
                raise ApiError(400, f"{_printable(param)} is nested more than {MAX_DEPTH} levels deep",
                               param=_printable(param), code="invalid_value")
            if isinstance(item, str):
                try:
                    item.encode("utf-8")
                except UnicodeEncodeError:
                    raise ApiError(400, f"{_printable(param)} contains an unpaired UTF-16 surrogate escape, which "
                                        f"is not valid Unicode", param=_printable(param),
                                   code="invalid_value") from None
            elif isinstance(item, list):  # numbers need no look (a 100k-token prompt stays cheap)
                stack.extend((v, depth + 1) for v in item if isinstance(v, (str, list, dict)))
            elif isinstance(item, dict):
                for k, v in item.items():
                    stack.append((k, depth + 1))
                    stack.append((v, depth + 1))


async def read_json_object(request: Request, max_bytes: int) -> dict:
    """The body as a JSON object (dict of plain values), or an ApiError in SPEC.md's shape."""
    _check_content_type(request)
    raw = await read_body(request, max_bytes)
    try:
        text = raw.decode("utf-8")
        body = json.loads(text, object_pairs_hook=_no_duplicates)
    except UnicodeDecodeError as e:
        raise ApiError(400, f"the request body is not UTF-8 text (invalid byte at offset {e.start})",
                       code="invalid_json") from None
    except json.JSONDecodeError as e:
        raise ApiError(400, f"the request body is not valid JSON: {e}", code="invalid_json") from None
    except RecursionError:
        raise ApiError(400, "the request body is nested too deeply", code="invalid_json") from None
    except _DuplicateKey as e:
        key = _printable(e.key)
        # param stays null: the object with the repeated key may be nested (logit_bias), the hook cannot tell
        raise ApiError(400, f"the request body has the key {key!r} twice in one object", code="duplicate_key") \
            from None
    except ValueError as e:  # e.g. an integer of more than 4,300 digits (Python's int conversion limit)
        raise ApiError(400, f"the request body holds a number that cannot be read: {e}",
                       code="invalid_json") from None
    if not isinstance(body, dict):
        raise ApiError(400, f"the request body must be a JSON object, got {type(body).__name__}",
                       code="invalid_json")
    _check_values(body)
    return body
