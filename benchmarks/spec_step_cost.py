"""What a llama_decode of k tokens of one sequence costs relative to one token (speculative decoding's cost table,
engine/speculative.py CPU_STEP_COST). Run: flock /tmp/bench.lock python benchmarks/spec_step_cost.py [MODEL ...]

For each k: the sequence holds ~400 tokens of context; k tokens are evaluated at its end (all rows' logits
kept, as verification does) and removed again; median over alternating rounds.
"""
import llama_cpp  # isort: skip  (before numpy)

import os
import statistics
import sys
import time

from engine.model import Model
from engine.registry import load_registry

KS = list(range(1, 17)) + [20, 24, 32]


def measure(name: str, rounds: int = 15) -> dict[int, float]:
    path = load_registry()[1][name].path
    with Model(path, n_ctx=2048, n_seq_max=1) as m:
        ctx = m.tokenize("The history of the harbour town " * 60)[:400]
        m.decode(ctx, list(range(len(ctx))), [0] * len(ctx), [False] * (len(ctx) - 1) + [True])
        n = len(ctx)
        times: dict[int, list[float]] = {k: [] for k in KS}
        for r in range(rounds):
            for k in (KS if r % 2 == 0 else KS[::-1]):
                toks = ctx[:k]
                t0 = time.perf_counter()
                m.decode(toks, list(range(n, n + k)), [0] * k, [True] * k)
                times[k].append(time.perf_counter() - t0)
                m.seq_remove(0, n, -1)
    med = {k: statistics.median(v) for k, v in times.items()}
    return {k: med[k] / med[1] for k in KS}


if __name__ == "__main__":
    names = sys.argv[1:] or ["smollm2-135m", "gemma3-270m"]
    print(f"load {os.getloadavg()}")
    for name in names:
        cost = measure(name)
        print(name, " ".join(f"{k}:{v:.2f}" for k, v in cost.items()))
    print(f"load {os.getloadavg()}")
