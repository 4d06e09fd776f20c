"""Same bytes before and after a refactor: run one fixed set of seeded requests (every parameter that shapes
the output, streamed and not, concurrent, speculative) on two checkouts and compare the responses byte for
byte (ids and `created` aside; `system_fingerprint` aside, since it hashes the code).

    git worktree add /tmp/before <commit>
    .venv/bin/python benchmarks/golden_compare.py /tmp/before .          # both on this venv's llama.cpp

Each checkout runs in its own process (the checkout first on sys.path), one engine per process.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REQUESTS = [
    dict(prompt="The capital of France is", max_tokens=24, temperature=0.9, top_p=0.95, seed=77, logprobs=2, n=2),
    dict(prompt="Once upon a time", max_tokens=32, temperature=1.2, seed=3, best_of=4, n=2),
    dict(prompt="Paris is the capital of France.", echo=True, logprobs=3, max_tokens=0),
    dict(prompt="Paris is the capital of France.", echo=True, logprobs=1, max_tokens=6, temperature=0),
    dict(prompt="1, 2, 3,", max_tokens=40, temperature=0, stop=[" 9", "\n\n"]),
    dict(prompt="the the the", max_tokens=20, frequency_penalty=1.0, presence_penalty=0.5, logit_bias={"0": -100},
         seed=5),
    dict(prompt=["In a galaxy", "A recipe for"], max_tokens=16, seed=11, n=3, temperature=0.7),
    dict(prompt=[1, 2, 3, 4, 5], max_tokens=8, seed=1),
    dict(prompt="Tell me a story", max_tokens=24, seed=9, stream=True, stream_options={"include_usage": True},
         logprobs=1),
]

CHILD = r"""
import json, sys, threading
sys.path.insert(0, sys.argv[1])
import engine
assert engine.__file__.startswith(sys.argv[1]), engine.__file__
from engine import Engine
requests = json.loads(sys.argv[2])

def scrub(r):
    r = dict(r); r.pop("id", None); r.pop("created", None); r.pop("system_fingerprint", None)
    return r

def run(e, req):
    out = e.create_completion(**req)
    return [scrub(c) for c in out] if req.get("stream") else scrub(out)

results = {}
with Engine("smollm2-135m", n_ctx=1024, n_seq_max=8) as e:
    results["alone"] = [run(e, r) for r in requests]
    together = [None] * len(requests)
    def one(i): together[i] = run(e, requests[i])
    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(requests))]
    [t.start() for t in threads]; [t.join() for t in threads]
    results["concurrent"] = together
with Engine("smollm2-135m", n_ctx=1024, speculative="prompt-lookup") as e:
    results["speculative"] = [run(e, r) for r in requests]
print(json.dumps(results, sort_keys=True, allow_nan=True))
"""


def outputs(root: Path) -> dict:
    r = subprocess.run([sys.executable, "-c", CHILD, str(root.resolve()), json.dumps(REQUESTS)],
                       capture_output=True, text=True, cwd=root, check=True)
    return json.loads(r.stdout.strip().splitlines()[-1])


def main(argv: list[str]) -> int:
    a, b = outputs(Path(argv[0])), outputs(Path(argv[1]))
    same = True
    for mode in a:
        for i, (x, y) in enumerate(zip(a[mode], b[mode])):
            if json.dumps(x, sort_keys=True) != json.dumps(y, sort_keys=True):
                same = False
                print(f"DIFFERENT: {mode} request {i}")
    n = sum(len(v) for v in a.values())
    alone_concurrent = a["alone"] == a["concurrent"] == a["speculative"]
    print(f"{n} responses compared: {'all byte-identical' if same else 'differences above'}; "
          f"alone == concurrent == speculative within each checkout: {alone_concurrent}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
