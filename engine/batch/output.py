"""The output file of a batch job: appended and flushed line by line, fsynced every few seconds, and on
--resume validated (a torn last line is cut off) and read back as the custom_ids already answered."""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Iterator

from ..errors import CompletionError
from .lines import load

FSYNC_EVERY_S = 2.0


def _is_output_line(raw: bytes) -> bool:
    obj = load(raw)
    return obj is not None and "custom_id" in obj and "id" in obj


def check_start(path: Path, resume: bool, overwrite: bool) -> None:
    """Refuse to overwrite a non-empty OUTPUT unless told; empty it on --overwrite."""
    if resume and overwrite:
        raise CompletionError("--resume and --overwrite exclude each other", param="resume")
    if path.is_dir():
        raise CompletionError(f"{path} is a directory", param="output")
    if overwrite:
        path.write_bytes(b"")
    elif not resume and path.exists() and path.stat().st_size > 0:
        raise CompletionError(f"{path} exists and is not empty: --resume to continue that job, --overwrite to "
                              f"start again", param="output")


def repair(path: Path) -> int:
    """--resume: the number of output lines in `path`, after cutting off a torn last line (one without its
    newline: a run killed mid-write). Any other line that is not an output line is not ours to guess about."""
    if not path.exists():
        return 0
    count, good_end = 0, 0
    with open(path, "rb") as f:
        for raw in f:
            if not raw.endswith(b"\n"):
                break  # the torn last line
            if not _is_output_line(raw):
                raise CompletionError(f"{path}: line {count + 1} is not a batch output line; not resuming onto it "
                                      f"(--overwrite to start again)", param="output")
            count += 1
            good_end += len(raw)
    if good_end != path.stat().st_size:
        with open(path, "r+b") as f:
            f.truncate(good_end)
            os.fsync(f.fileno())
    return count


def custom_ids(path: Path) -> Iterator[str | None]:
    """The custom_id of each output line (the file was repaired: every line parses)."""
    if not path.exists():
        return
    with open(path, "rb") as f:
        for raw in f:
            yield load(raw).get("custom_id")


class Appender:
    """Appends whole lines: each is one write, flushed at once (a killed process loses at most the line being
    written, which --resume cuts off); fsync every FSYNC_EVERY_S seconds and at close (a machine that dies
    loses at most those seconds)."""

    def __init__(self, path: Path):
        self.f = open(path, "ab", buffering=0)
        self.last_sync = time.monotonic()

    def write(self, line: bytes) -> None:
        self.f.write(line)
        now = time.monotonic()
        if now - self.last_sync >= FSYNC_EVERY_S:
            os.fsync(self.f.fileno())
            self.last_sync = now

    def close(self) -> None:
        if not self.f.closed:
            os.fsync(self.f.fileno())
            self.f.close()

    def __enter__(self) -> "Appender":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
