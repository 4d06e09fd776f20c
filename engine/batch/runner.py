"""run_batch: OpenAI Batch lines in, output lines out, in input order, on one engine. The lines are parsed here
(lines.py); the window of requests in flight is the core's (engine/in_flight.py, on Engine.submit)."""
from __future__ import annotations

from typing import Iterable, Iterator

from ..in_flight import Ready, Request, in_order
from .lines import Ids, LineError, UniqueCustomIds, completed, custom_id_of, line_error, parse, refused


def run_batch(engine, lines: Iterable[dict | str | bytes], stable_ids: bool = False, window: int | None = None,
              first_line: int = 1, check_duplicates: bool = True) -> Iterator[dict]:
    """OpenAI Batch API lines for /v1/completions in (each the parsed object or its JSON text), one output line
    (a dict) per input line out, in input order; blank text lines are skipped but counted (`first_line` is the
    number of the first). About `window` requests (default 2 x engine.n_seq_max) run at once on the engine's
    continuous batching; a bad line or body becomes an error line, never an exception.

    Raises RuntimeError when the engine fails (the lines yielded so far are good). Duplicate custom_ids raise
    CompletionError (param custom_id, code duplicate_custom_id): a list's before any work, an iterator's when
    the duplicate is met (its custom_ids are remembered: check_duplicates=False when the caller checked them,
    as the batch command does, and memory stays flat). Closing the iterator early cancels what still runs."""
    if check_duplicates and isinstance(lines, (list, tuple)):  # a list is checked before any work
        before = UniqueCustomIds(UniqueCustomIds.LIST)
        for no, raw in enumerate(lines, first_line):
            before.add(custom_id_of(raw), no)
    ids = Ids(stable_ids)
    yield from in_order(engine, _entries(lines, ids, first_line, UniqueCustomIds() if check_duplicates else None),
                        answer=lambda req, response: completed(ids, req, response),
                        refuse=lambda req, e: refused(ids, req, e), window=window)


def _entries(lines: Iterable, ids: Ids, first_line: int, unique: UniqueCustomIds | None) -> Iterator[Request | Ready]:
    line_no = first_line - 1
    for raw in lines:
        line_no += 1
        if isinstance(raw, (str, bytes)) and not raw.strip():
            continue
        req = parse(raw, line_no)
        if unique is not None:
            unique.add(req.custom_id, line_no)
        if isinstance(req, LineError):
            yield Ready(line_error(ids, req))
        else:
            yield Request(req.body, req)
