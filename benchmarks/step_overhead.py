"""Our own cost per engine step, apart from llama.cpp: wall time minus the time inside Model.decode, per
generated token, for one checkout against another (a refactor's speed check that llama.cpp's noise cannot
hide: on 2 shared cores a decode step moves by 10-20 % between runs, our part by a few microseconds).

    git worktree add /tmp/before <commit>
    .venv/bin/python benchmarks/step_overhead.py /tmp/before . --rounds 3

Workloads (SmolLM2, end-of-generation banned so every run has its full length): one request n=1 (128 tokens),
one request n=4, 8 concurrent requests, n=1 with logprobs=5. Each checkout runs in its own process, the two
alternated round by round (reversed every other round); medians of the per-round figures.
"""
from __future__ import annotations

import json
import statistics
import subprocess
import sys
from pathlib import Path

CHILD = r"""
import json, sys, threading, time
sys.path.insert(0, sys.argv[1])
import engine
assert engine.__file__.startswith(sys.argv[1]), engine.__file__
from engine import Engine
e = Engine("smollm2-135m", n_ctx=1024, n_seq_max=8, lazy_slots=False)
model = e.model
spent = [0.0]
decode = model.decode
def timed(*a, **k):
    t = time.perf_counter()
    try:
        return decode(*a, **k)
    finally:
        spent[0] += time.perf_counter() - t
model.decode = timed
ban = {str(t): -100 for t in model.eog_tokens}
base = dict(prompt="Once upon a time", max_tokens=128, temperature=1.0, top_p=0.9, seed=1, logit_bias=ban)
def one(**over): return e.create_completion(**dict(base, **over))
def concurrent(k):
    ts = [threading.Thread(target=one, kwargs=dict(seed=i)) for i in range(k)]
    [t.start() for t in ts]; [t.join() for t in ts]
workloads = {"n=1": lambda: one(), "n=4": lambda: one(n=4), "8 concurrent": lambda: concurrent(8),
             "logprobs=5": lambda: one(logprobs=5)}
tokens = {"n=1": 128, "n=4": 512, "8 concurrent": 1024, "logprobs=5": 128}
out = {}
for name, fn in workloads.items():
    fn()  # warm
    spent[0] = 0.0
    t = time.perf_counter(); fn(); wall = time.perf_counter() - t
    out[name] = {"overhead_us_per_token": (wall - spent[0]) / tokens[name] * 1e6,
                 "decode_ms_per_token": spent[0] / tokens[name] * 1e3}
e.close()
print(json.dumps(out))
"""


def run(root: Path) -> dict:
    r = subprocess.run([sys.executable, "-c", CHILD, str(root.resolve())], capture_output=True, text=True,
                       cwd=root, check=True)
    return json.loads(r.stdout.strip().splitlines()[-1])


def main(argv: list[str]) -> int:
    import argparse

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("a")
    p.add_argument("b")
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args(argv)
    sides = {"a": Path(args.a), "b": Path(args.b)}
    results: dict = {"a": [], "b": []}
    for r in range(args.rounds):
        for side in (["a", "b"] if r % 2 == 0 else ["b", "a"]):
            results[side].append(run(sides[side]))
            print(side, r, json.dumps(results[side][-1]), flush=True)
    print(f"\n| workload | our overhead µs/token, {args.a} | {args.b} | decode ms/token, {args.a} | {args.b} |")
    print("|---|---|---|---|---|")
    for name in results["a"][0]:
        med = {s: statistics.median(x[name]["overhead_us_per_token"] for x in results[s]) for s in results}
        dec = {s: statistics.median(x[name]["decode_ms_per_token"] for x in results[s]) for s in results}
        print(f"| {name} | {med['a']:.0f} | {med['b']:.0f} | {dec['a']:.2f} | {dec['b']:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
