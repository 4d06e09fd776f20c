"""The bytes the engine puts on the wire: compact JSON, as the server sends responses, stream chunks and error
bodies, and as a batch job writes its output lines (engine/batch/lines.py adds the newline)."""
from __future__ import annotations

import json


def dumps(obj) -> bytes:
    """Compact JSON; never fails on what the engine returns (a -inf logprob becomes -Infinity, as Python's json
    and the openai client read it; a string that cannot be UTF-8 falls back to ASCII escapes)."""
    text = json.dumps(obj, ensure_ascii=False, allow_nan=True, separators=(",", ":"))
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(obj, ensure_ascii=True, allow_nan=True, separators=(",", ":")).encode("ascii")
