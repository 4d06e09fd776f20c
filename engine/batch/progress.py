"""What a batch job reports: a tqdm bar on stderr while it runs, one summary line at the end."""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import ClassVar, Mapping


@dataclass
class Tally:
    """What a run (or one block of it, on a Ray replica) answered. `to_row()`/`from_row()` carry the counts
    between processes as a row of named ints, and `merge` adds a block's to the job's."""

    COUNTS: ClassVar[tuple[str, ...]] = ("lines", "ok", "refused", "line_errors", "prompt_tokens",
                                         "completion_tokens")

    lines: int = 0
    ok: int = 0
    refused: int = 0  # 4xx: the engine refused the body
    line_errors: int = 0  # not a request at all (response null)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    started: float = field(default_factory=time.perf_counter)

    def add(self, out: dict) -> None:
        self.lines += 1
        response = out.get("response")
        if response is None:
            self.line_errors += 1
        elif response["status_code"] == 200:
            self.ok += 1
            usage = response["body"].get("usage") or {}
            self.prompt_tokens += usage.get("prompt_tokens", 0)
            self.completion_tokens += usage.get("completion_tokens", 0)
        else:
            self.refused += 1

    def to_row(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in self.COUNTS}

    @classmethod
    def from_row(cls, row: Mapping) -> "Tally":
        return cls(**{name: int(row[name]) for name in cls.COUNTS})

    def merge(self, other: "Tally") -> None:
        for name in self.COUNTS:
            setattr(self, name, getattr(self, name) + getattr(other, name))

    @property
    def errors(self) -> int:
        return self.refused + self.line_errors

    def wall(self) -> float:
        return time.perf_counter() - self.started

    def summary(self, skipped: int = 0) -> str:
        wall = self.wall()
        rate = self.completion_tokens / wall if wall > 0 else 0.0
        resumed = f" ({skipped} answered before, skipped)" if skipped else ""
        return (f"batch: {self.lines} lines{resumed}: {self.ok} ok, {self.refused} 4xx, {self.line_errors} line "
                f"errors; {self.prompt_tokens} prompt + {self.completion_tokens} completion tokens in {wall:.1f} s "
                f"({rate:.1f} tok/s)")


class Progress:
    """lines done / total, completion tok/s, errors so far, ETA (tqdm's); off with quiet."""

    def __init__(self, total: int | None, initial: int, quiet: bool):
        from tqdm import tqdm

        self.bar = tqdm(total=total, initial=initial, unit="line", file=sys.stderr, disable=quiet,
                        dynamic_ncols=True, smoothing=0.1)
        self.tally = Tally()
        self._last_postfix = 0.0

    def add(self, out: dict) -> None:
        self.tally.add(out)
        now = time.perf_counter()
        if now - self._last_postfix > 0.5:
            t = self.tally
            self.bar.set_postfix_str(f"{t.completion_tokens / max(t.wall(), 1e-9):.1f} tok/s, {t.errors} errors",
                                     refresh=False)
            self._last_postfix = now
        self.bar.update(1)

    def close(self) -> None:
        self.bar.close()
