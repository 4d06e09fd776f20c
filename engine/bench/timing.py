"""Alternating rounds: every contender runs once per round, the starting one rotating, so a machine that
speeds up or slows down during the run (shared, thermal) shifts all of them alike."""
from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def alternating_medians(contenders: dict[str, Callable[[int], object]], rounds: int,
                        warm_up: bool) -> dict[str, float]:
    """Median wall seconds per contender; each callable gets the round number (-1 for the warm-up)."""
    names = list(contenders)
    if warm_up:
        for name in names:
            contenders[name](-1)
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        for k in range(len(names)):
            name = names[(r + k) % len(names)]
            t0 = time.perf_counter()
            contenders[name](r)
            times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(ts) for name, ts in times.items()}
