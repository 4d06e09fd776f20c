"""The input pass before any work: count the lines (for the progress bar), refuse duplicate custom_ids (as
OpenAI does), check that a resumed OUTPUT belongs to this INPUT, and note where each block of lines starts (for
Ray). Memory: 8 bytes per custom_id (an array of hashes), not the strings."""
from __future__ import annotations

from array import array
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np

from ..errors import CompletionError
from .lines import UniqueCustomIds, custom_id_of


@dataclass
class InputScan:
    lines: int = 0  # non-blank lines: one output line each
    skip_bytes: int = 0  # where the first line not yet answered starts
    skip_line: int = 1  # its 1-based line number in the file
    blocks: list[tuple[int, int, int]] = field(default_factory=list)  # (first line no, start byte, end byte)


def numbered_lines(path: Path, start_byte: int = 0, end_byte: int | None = None,
                   first_line: int = 1) -> Iterator[tuple[int, int, bytes]]:
    """(line number, byte offset, raw line) for each line in [start_byte, end_byte)."""
    with open(path, "rb") as f:
        f.seek(start_byte)
        pos, no = start_byte, first_line
        for raw in f:
            if end_byte is not None and pos >= end_byte:
                return
            yield no, pos, raw
            pos += len(raw)
            no += 1


def scan(path: Path, done_ids: Iterator[str | None], done: int, block_lines: int = 0) -> InputScan:
    """One pass over INPUT. `done_ids`: the custom_ids already in OUTPUT (its first `done` lines), which must
    be the first non-blank lines of INPUT in order. `block_lines` > 0: also cut the rest into blocks of that
    many non-blank lines."""
    out = InputScan()
    hashes = array("q")
    block_start = None
    count_in_block = 0
    end = 0
    for no, pos, raw in numbered_lines(path):
        end = pos + len(raw)
        if not raw.strip():
            continue
        out.lines += 1
        cid = custom_id_of(raw)
        if cid is not None:
            hashes.append(hash(cid))
        if out.lines <= done:
            want = next(done_ids, None)
            if want != cid:
                raise CompletionError(f"OUTPUT line {out.lines} answers custom_id {want!r} but INPUT line {no} is "
                                      f"{cid!r}: that OUTPUT is not from this INPUT (--overwrite to start again)",
                                      param="resume")
            out.skip_bytes, out.skip_line = end, no + 1
            continue
        if block_lines:
            if block_start is None:
                block_start = (no, pos)
            count_in_block += 1
            if count_in_block == block_lines:
                out.blocks.append((block_start[0], block_start[1], end))
                block_start, count_in_block = None, 0
    if done > out.lines:
        raise CompletionError(f"OUTPUT has {done} lines but INPUT only {out.lines}: that OUTPUT is not from this "
                              f"INPUT (--overwrite to start again)", param="resume")
    if block_start is not None:
        out.blocks.append((block_start[0], block_start[1], end))
    _refuse_duplicates(path, hashes)
    return out


def _refuse_duplicates(path: Path, hashes: array) -> None:
    """Equal hashes are rare: only then read the file again for the strings (and the lines) they belong to, and
    raise at the first custom_id that appears twice (UniqueCustomIds.FILE)."""
    h = np.sort(np.frombuffer(hashes, dtype=np.int64)) if len(hashes) else np.empty(0, np.int64)
    suspects = set(h[1:][h[1:] == h[:-1]].tolist())
    if not suspects:
        return
    check = UniqueCustomIds(UniqueCustomIds.FILE)
    for no, _, raw in numbered_lines(path):
        cid = custom_id_of(raw) if raw.strip() else None
        if cid is not None and hash(cid) in suspects:
            check.add(cid, no)
