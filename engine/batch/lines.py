"""OpenAI's Batch file format for /v1/completions: reading an input line, writing an output line.

Input:  {"custom_id": "...", "method": "POST", "url": "/v1/completions", "body": {<request>}}
Output: {"id": "batch_req_...", "custom_id": "...", "response": {"status_code", "request_id", "body"},
         "error": null}; a line that is not a request at all gets "response": null and
         "error": {"code", "message", "line"}.
"""
from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass

from ..errors import CompletionError, clip
from ..wire import dumps

URL = "/v1/completions"


@dataclass(frozen=True)
class BatchRequest:
    line: int
    custom_id: str
    body: dict


@dataclass(frozen=True)
class LineError:
    """A line that is not a request: answered with response null and this error."""
    line: int
    custom_id: str | None
    code: str
    message: str


def load(raw: dict | str | bytes) -> dict | None:
    """The line's JSON object, or None when it is not one: the one parser of a JSONL line (input lines here,
    the input pass in scan.py, output lines on --resume in output.py)."""
    if isinstance(raw, dict):
        return raw
    try:
        obj = json.loads(raw)
    except (ValueError, RecursionError):
        return None
    return obj if isinstance(obj, dict) else None


def custom_id_of(raw: dict | str | bytes) -> str | None:
    """The custom_id a line names (None if it is not JSON or names none): for duplicate checks and resume."""
    obj = load(raw)
    cid = obj.get("custom_id") if obj is not None else None
    return cid if isinstance(cid, str) and cid else None


class UniqueCustomIds:
    """The one duplicate-custom_id check (OpenAI's Batch API refuses a file that repeats one): remembers each
    custom_id with the line it was first met on; meeting one again raises CompletionError (param "custom_id",
    code "duplicate_custom_id") with the message of the caller's `kind`:

    - ITERATOR: run_batch on an iterator, at the repeat (the lines before it may have run);
    - LIST: run_batch on a list, before any work;
    - FILE: the batch command's input pass (scan.py), before any work, naming both lines.
    """

    ITERATOR = "custom_id {custom_id!r} (line {line}) appears twice; custom_ids must be unique"
    LIST = "custom_id {custom_id!r} appears twice; custom_ids must be unique"
    FILE = "custom_id {custom_id!r} appears twice (lines {first} and {line}); custom_ids must be unique, nothing " \
           "was run"

    def __init__(self, kind: str = ITERATOR):
        self.kind = kind
        self.first_line: dict[str, int] = {}  # grows with the input: the file pass keeps only suspects here

    def add(self, custom_id: str | None, line: int) -> None:
        """Note `custom_id` (None: the line names none) met on `line`; raise if it was met before."""
        if custom_id is None:
            return
        first = self.first_line.setdefault(custom_id, line)
        if first != line:
            raise CompletionError(self.kind.format(custom_id=custom_id, first=first, line=line), param="custom_id",
                                  code="duplicate_custom_id")


def parse(raw: dict | str | bytes, line: int) -> BatchRequest | LineError:
    obj = load(raw)
    if obj is None:
        return LineError(line, None, "invalid_json", "the line is not a JSON object")
    cid = obj.get("custom_id")
    if not isinstance(cid, str) or not cid:
        return LineError(line, None, "missing_custom_id", "custom_id: a non-empty string is required")
    method, url, body = obj.get("method"), obj.get("url"), obj.get("body")
    if method != "POST":
        return LineError(line, cid, "invalid_method", clip(f"method must be \"POST\", got {method!r}"))
    if url != URL:
        return LineError(line, cid, "invalid_url", clip(f"url must be {URL!r} (the only endpoint here), got {url!r}"))
    if not isinstance(body, dict):
        return LineError(line, cid, "invalid_body", "body must be a JSON object (the completion request)")
    if body.get("stream") is True:
        return LineError(line, cid, "stream_unsupported", "body.stream: a batch line cannot stream; leave it out")
    return BatchRequest(line, cid, body)


# ---- output lines -----------------------------------------------------------------------------------

class Ids:
    """Ids of output lines: fresh random ones, or (stable) derived from custom_id with a fixed `created`, so
    that two runs of a seeded file give the same bytes."""

    STABLE_CREATED = 0

    def __init__(self, stable: bool):
        self.stable = stable

    def _hex(self, custom_id: str | None, line: int) -> str:
        if not self.stable:
            return uuid.uuid4().hex
        key = custom_id if custom_id is not None else f"line {line}"  # no custom_id: only its line names it
        return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:32]

    def line_id(self, custom_id: str | None, line: int) -> tuple[str, str]:
        h = self._hex(custom_id, line)
        return f"batch_req_{h}", f"req_{h}"

    def fix_body(self, body: dict, custom_id: str) -> dict:
        if self.stable:
            body["id"] = f"cmpl-{self._hex(custom_id, 0)}"
            body["created"] = self.STABLE_CREATED
        return body


def answered(ids: Ids, req: BatchRequest, status: int, body: dict) -> dict:
    line_id, request_id = ids.line_id(req.custom_id, req.line)
    return {"id": line_id, "custom_id": req.custom_id,
            "response": {"status_code": status, "request_id": request_id, "body": body}, "error": None}


def completed(ids: Ids, req: BatchRequest, completion: dict) -> dict:
    return answered(ids, req, 200, ids.fix_body(completion, req.custom_id))


def refused(ids: Ids, req: BatchRequest, e: CompletionError) -> dict:
    """The engine refused the body: SPEC.md's error body with its status, as the server sends it."""
    return answered(ids, req, e.status, e.body())


def line_error(ids: Ids, err: LineError) -> dict:
    line_id, _ = ids.line_id(err.custom_id, err.line)
    return {"id": line_id, "custom_id": err.custom_id, "response": None,
            "error": {"code": err.code, "message": err.message, "line": err.line}}


def encode(obj: dict) -> bytes:
    """One output line with its newline: compact JSON as the server encodes responses (engine.wire.dumps)."""
    return dumps(obj) + b"\n"
