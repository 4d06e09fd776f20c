"""RSS against llama-cpp-python, and the README's memory table: RSS after one short request for slots x
context x KV type. Each configuration runs in a fresh process (RSS is per process and never shrinks).

Run: ./dev bench -k memory   (prints both tables; nothing gates on an absolute number)
"""
import json
import subprocess
import sys

import pytest

from engine.registry import load_registry

OURS = """
import json, resource, sys
from engine import Engine
slots, n_ctx, kv, lazy = {slots}, {n_ctx}, {kv!r}, {lazy}
e = Engine("smollm2-135m", n_ctx=n_ctx, n_seq_max=slots, lazy_slots=lazy, kv_cache_type=kv, n_threads=2)
e.create_completion(prompt="The capital of France is", max_tokens=8, temperature=0)
print(json.dumps({{"rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, **e.memory()}}))
"""
THEIRS = """
import json, resource
from engine.bench.llama_python import load_llama  # our weight layout (its default AMX repack crashed here)
llm = load_llama({path!r}, repack_weights=False, n_ctx={n_ctx}, n_threads=2, verbose=False)
llm.create_completion("The capital of France is", max_tokens=8, temperature=0)
print(json.dumps({{"rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}}))
"""
BARE = """
import json, resource
import numpy, numba, llama_cpp
print(json.dumps({"rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}))
"""
ROWS: list[str] = []


def _run(code: str) -> dict:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=600)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("n_ctx", [4096, 512])
def test_single_caller_rss_vs_llama_cpp_python(benchmark, n_ctx):
    path = str(load_registry()[1]["smollm2-135m"].path)
    ours = benchmark.pedantic(lambda: _run(OURS.format(slots=8, n_ctx=n_ctx, kv="f16", lazy=True)),
                              rounds=1, iterations=1)
    theirs = _run(THEIRS.format(path=path, n_ctx=n_ctx))
    bare = _run(BARE)
    ROWS.append(f"| single caller, n_ctx {n_ctx} | {ours['rss'] / 2**20:.0f} MB | {theirs['rss'] / 2**20:.0f} MB "
                f"| {ours['rss'] / theirs['rss']:.2f}x | {bare['rss'] / 2**20:.0f} MB |")


def test_memory_table(benchmark):
    def table():
        lines = []
        for kv in ("f16", "q8_0"):
            for n_ctx in (512, 4096):
                for slots in (1, 4, 8):
                    r = _run(OURS.format(slots=slots, n_ctx=n_ctx, kv=kv, lazy=False))
                    lines.append(f"| {slots} | {n_ctx} | {kv} | {r['rss'] / 2**20:.0f} MB | "
                                 f"{r['kv_bytes'] / 2**20:.0f} MB | {r['compute_bytes'] / 2**20:.0f} MB | "
                                 f"{r['model_bytes'] / 2**20:.0f} MB |")
        return lines
    lines = benchmark.pedantic(table, rounds=1, iterations=1)
    print("\n\n| setting | ours RSS | llama-cpp-python RSS | ratio | python+numpy+numba+llama_cpp imported |"
          "\n|---|---|---|---|---|")
    print("\n".join(ROWS))
    print("\n| slots | n_ctx | KV type | RSS | KV | compute | weights |\n|---|---|---|---|---|---|---|")
    print("\n".join(lines))
