"""Numerics per weight type: ours vs a stock llama-cpp-python, and the cost of k tokens per call.

Run: ./dev bench -k numerics -s      (the tables are printed; figures are reported, not gated)

- ours vs stock: benchmarks/stock_compare.py, each contender in its own process, alternated (one round per
  type here; the script itself takes --rounds). Needs a stock venv: `python -m venv
  ~/.cache/sampling-engine/stock-venv && ~/.cache/sampling-engine/stock-venv/bin/pip install
  llama-cpp-python==0.3.36` (skipped without one). Goals (docs/numerics.md): prefill >= 0.95x stock,
  decode >= 0.97x stock.
- k tokens of one sequence per llama_decode (k = 1, 2, 4, 8; all k rows' logits, as speculative decoding's
  verification needs), in this process on the engine's own model, relative to k = 1, rounds alternated.
"""
import llama_cpp  # isort: skip  (before numpy)

import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine import Engine
from engine.registry import load_registry
from engine.typed_models import build_typed_model

HERE = Path(__file__).resolve().parent
STOCK_PYTHON = Path.home() / ".cache/sampling-engine/stock-venv/bin/python"
TYPES = ("smollm2-135m", "gemma3-270m", "smollm2-135m-q8_0", "smollm2-135m-q4_0", "smollm2-135m-q5_0",
         "smollm2-135m-f16")
TABLE: dict[str, str] = {}


def model_file(name: str) -> str:
    entries = load_registry()[1]
    if name in entries:
        return str(entries[name].path)
    registry_name, weight_type = name.rsplit("-", 1)
    return str(build_typed_model(registry_name, weight_type))


@pytest.fixture(scope="module", autouse=True)
def print_tables():
    yield
    if TABLE:
        print("\n" + "\n".join(TABLE.values()))


@pytest.mark.parametrize("name", TYPES)
def test_k_tokens_per_call_cost(benchmark, name):
    with Engine(model_file(name), n_ctx=1024, n_threads=2) as engine:
        model = engine.model
        tokens = model.tokenize("The history of the river valley is long and varied. " * 12)[:72]

        def run():  # on the engine's loop thread, which owns the model
            model.seq_remove(-1)
            model.decode(tokens[:64], range(64), [0] * 64, [False] * 64)
            times = {k: [] for k in (1, 2, 4, 8)}
            for r in range(16):
                for k in ((1, 2, 4, 8) if r % 2 == 0 else (8, 4, 2, 1)):
                    t0 = time.perf_counter()
                    model.decode(tokens[64:64 + k], range(64, 64 + k), [0] * k, [True] * k)
                    times[k].append(time.perf_counter() - t0)
                    model.seq_remove(0, 64, -1)
            model.seq_remove(-1)
            return {k: statistics.median(v) for k, v in times.items()}

        med = benchmark.pedantic(lambda: engine.loop.call(run), rounds=1, iterations=1)
    ratios = {k: med[k] / med[1] for k in med}
    benchmark.extra_info.update({f"k{k}_over_k1": v for k, v in ratios.items()})
    TABLE.setdefault("k", "| type | k=1 ms | k=2 / k=1 | k=4 / k=1 | k=8 / k=1 |\n|---|---|---|---|---|")
    TABLE["k"] += (f"\n| {name} | {med[1] * 1e3:.1f} | {ratios[2]:.2f} | {ratios[4]:.2f} | {ratios[8]:.2f} |")
    assert all(v > 0 for v in med.values())


@pytest.mark.skipif(not STOCK_PYTHON.exists(), reason=f"no stock llama-cpp-python venv at {STOCK_PYTHON}")
@pytest.mark.parametrize("name", TYPES)
def test_ours_vs_stock(benchmark, name):
    def run():
        out = subprocess.run([sys.executable, str(HERE / "stock_compare.py"), "--types", name, "--rounds", "1",
                              "--stock-python", str(STOCK_PYTHON)], capture_output=True, text=True, timeout=1200)
        assert out.returncode == 0, out.stderr[-3000:]
        return [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]

    rows = {r["contender"]: r for r in benchmark.pedantic(run, rounds=1, iterations=1)}
    ours, stock = rows["ours"], rows["stock"]
    ratios = {"prefill": ours["prefill"] / stock["prefill"], "decode": ours["decode"] / stock["decode"],
              "echo": ours["echo"] / stock["echo"], "ttft (stock/ours)": stock["ttft"] / ours["ttft"]}
    benchmark.extra_info.update(ratios)
    TABLE.setdefault("stock", "| type | prefill ours/stock | decode | echo | TTFT stock/ours | invariant |\n"
                              "|---|---|---|---|---|---|")
    TABLE["stock"] += (f"\n| {name} | {ratios['prefill']:.2f} | {ratios['decode']:.2f} | {ratios['echo']:.2f} | "
                       f"{ratios['ttft (stock/ours)']:.2f} | {ours['batch_invariant']} |")
    assert ours["batch_invariant"] is True
