"""Alternating rounds: every contender runs once per round, the starting one rotating, so a machine that
speeds up or slows down during the run (shared, thermal) shifts all of them alike."""
from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def alternating_rates(contenders: dict[str, Callable[[int], int]], rounds: int, warm_up: bool) -> dict[str, float]:
    """Median tokens per second of each contender. A contender gets the round number (-1 for the warm-up)
    and returns how many tokens it generated or scored."""
    names = list(contenders)
    if warm_up:
        for name in names:
            contenders[name](-1)
    rates: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        for k in range(len(names)):
            name = names[(r + k) % len(names)]
            t0 = time.perf_counter()
            n = contenders[name](r)
            rates[name].append(n / (time.perf_counter() - t0))
    return {name: statistics.median(v) for name, v in rates.items()}
