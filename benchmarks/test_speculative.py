"""Prompt-lookup speculative decoding against speculation off, in one run, contenders alternated round by round.

Run: flock /tmp/bench.lock python -m pytest benchmarks/test_speculative.py -s   (SPEC_BENCH_MODEL=gemma3-270m for
the other registry model). The table (tokens/s ratio on/off, acceptance, mean accepted run) is printed at the
end and written to benchmarks/results/speculative_<model>.{json,md} (and .png when matplotlib is installed).

Both engines give the same bytes (tests/test_speculative.py), so each workload generates the same tokens with
speculation on and off and the ratio of tokens/s is the ratio of wall times. The machine is shared: every
figure is a median of alternating rounds, and the load (`uptime`) is recorded beside the table.
"""
from __future__ import annotations

import json
import os
import statistics
import threading
import time
from pathlib import Path

import pytest

from engine import Engine
from engine.registry import load_registry

MODEL = os.environ.get("SPEC_BENCH_MODEL") or load_registry()[0]
ROUNDS = int(os.environ.get("SPEC_BENCH_ROUNDS", "3"))
OUT = Path(__file__).parent / "results"
RESULTS: dict[str, dict] = {}

PASSAGE = (
    "The old harbour town woke slowly on winter mornings. Fishermen carried their nets down the narrow lanes "
    "while the bakery on the corner filled the square with the smell of fresh bread. Children ran past the "
    "church with their satchels, and the postman stopped at every door to talk about the weather. Out on the "
    "water, the ferry sounded its horn twice before it left for the island, where a few farmers still kept "
    "sheep on the windy hills. In the afternoon the light turned gold over the sea wall, and the old men sat "
    "on the benches by the lighthouse, arguing about football and the price of fuel. When the tide came in, "
    "the boats rose against their moorings and the gulls settled on the roofs of the warehouses. By evening "
    "the cafes lit their lamps, and the whole town gathered to share the news of the day before the long "
    "night fell over the cliffs and the quiet fields beyond them."
)
# one worked example first: the small registry models then copy rather than paraphrase
COPY = ("Copy each paragraph exactly.\n\nParagraph:\nThe cat sat on the mat and watched the rain.\n\n"
        "Copy:\nThe cat sat on the mat and watched the rain.\n\n"
        f"Paragraph:\n{PASSAGE}\n\nCopy:\n")
RECORD = json.dumps({"id": 48213, "customer": {"name": "Margaret Holloway", "email": "m.holloway@example.org",
                                               "city": "Edinburgh", "country": "United Kingdom"},
                     "order": {"items": ["walking boots", "wool socks", "rain jacket"], "total": 214.5,
                               "currency": "GBP", "status": "shipped"}}, indent=2)
EXTRACT = (f"Record:\n{RECORD}\n\nList every field of the record above with its value, one per line, "
           f"as path: value.\n\nid: 48213\ncustomer.name:")
CODE_SRC = '''def load_user_records(path, limit=None):
    """Read user records from a CSV file and return them as dictionaries."""
    records = []
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        for row in reader:
            if limit is not None and len(records) >= limit:
                break
            row["age"] = int(row["age"])
            row["active"] = row["active"].lower() == "true"
            records.append(row)
    return records
'''
CODE = (f"{CODE_SRC}\n# Rewrite the function above with the variable `records` renamed to `users`; "
        f"everything else stays the same.\n\ndef load_user_records(path, limit=None):\n")
STORY = "Write a short story about a dragon who is afraid of the dark.\n\nOnce upon a time,"

WORKLOADS = {  # name: (prompt, max_tokens, temperature)
    "copy T=0": (COPY, 200, 0.0),
    "copy T=0.7": (COPY, 200, 0.7),
    "json T=0": (EXTRACT, 96, 0.0),
    "json T=0.7": (EXTRACT, 96, 0.7),
    "code edit T=0": (CODE, 120, 0.0),
    "code edit T=0.7": (CODE, 120, 0.7),
    "free text T=1": (STORY, 120, 1.0),
}
GOALS = {"copy T=0": 1.5, "free text T=1": 0.97, "8 concurrent copy T=0": 1.0, "8 concurrent free text T=1": 0.97}


class Contender:
    """One engine, speculation on or off. Both contenders share one Engine, whose speculation is switched on its
    loop thread between runs: two Engines in one process are two threads calling llama_decode, i.e. two OpenMP
    teams, and on a 2-core machine they slow each other's every step (tests/test_decode_thread.py)."""

    def __init__(self, engine: Engine, speculation):
        self.engine, self.speculation = engine, speculation

    def create_completion(self, **request):
        return self.engine.create_completion(**request)

    def switch_in(self) -> None:
        sched = self.engine.loop.scheduler
        self.engine.loop.call(lambda: setattr(sched, "speculation", self.speculation))

    def spec_counts(self) -> dict:
        sched = self.engine.loop.scheduler
        return self.engine.loop.call(lambda: {"draft_runs": sched.spec_runs, "drafted": sched.spec_drafted,
                                              "accepted": sched.spec_accepted})


@pytest.fixture(scope="module")
def engines():
    with Engine(MODEL, n_ctx=2048, n_seq_max=8, lazy_slots=False, speculative="prompt-lookup") as engine:
        # SPEC_BENCH_AA=1: both contenders off, an A/A run that shows the noise floor of the ratios
        on = None if os.environ.get("SPEC_BENCH_AA") else engine.loop.scheduler.speculation
        yield Contender(engine, None), Contender(engine, on)


def _request(name, seed):
    prompt, max_tokens, temperature = WORKLOADS[name]
    return dict(prompt=prompt, max_tokens=max_tokens, temperature=temperature, seed=seed)


def _run(engine: Contender, requests) -> tuple[float, int, str]:
    """Wall time, completion tokens and the texts of `requests` run at once (threads)."""
    engine.switch_in()
    out: list = [None] * len(requests)

    def go(i):
        out[i] = engine.create_completion(**requests[i])
    t0 = time.perf_counter()
    if len(requests) == 1:
        go(0)
    else:
        threads = [threading.Thread(target=go, args=(i,)) for i in range(len(requests))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    wall = time.perf_counter() - t0
    return wall, sum(r["usage"]["completion_tokens"] for r in out), json.dumps([r["choices"] for r in out])


def _alternate(benchmark, label, engines, requests_for_round):
    off, on = engines

    def run():
        _run(off, requests_for_round(-1))
        _run(on, requests_for_round(-1))
        times = {"off": [], "on": []}
        tokens = 0
        before = on.spec_counts()
        for r in range(ROUNDS):
            order = (("off", off), ("on", on)) if r % 2 == 0 else (("on", on), ("off", off))
            texts = {}
            for name, engine in order:
                wall, tokens, texts[name] = _run(engine, requests_for_round(r))
                times[name].append(wall)
            assert texts["on"] == texts["off"], f"{label}: speculation changed the output"
        after = on.spec_counts()
        seen = {k: after[k] - before[k] for k in after}
        off_s, on_s = statistics.median(times["off"]), statistics.median(times["on"])
        return {"tokens": tokens, "off_tok_s": tokens / off_s, "on_tok_s": tokens / on_s, "ratio": off_s / on_s,
                "drafted": seen["drafted"], "accepted": seen["accepted"], "draft_runs": seen["draft_runs"],
                "acceptance": seen["accepted"] / seen["drafted"] if seen["drafted"] else None,
                "mean_accepted": seen["accepted"] / seen["draft_runs"] if seen["draft_runs"] else None}
    RESULTS[label] = benchmark.pedantic(run, rounds=1, iterations=1)


@pytest.mark.parametrize("name", list(WORKLOADS))
def test_workload(benchmark, engines, name):
    benchmark.group = f"speculative {name}"
    _alternate(benchmark, name, engines, lambda r: [_request(name, 1000 + r)])


def test_eight_concurrent_copies(benchmark, engines):
    benchmark.group = "speculative 8 concurrent copy"
    _alternate(benchmark, "8 concurrent copy T=0", engines,
               lambda r: [dict(_request("copy T=0", 0), max_tokens=64) for _ in range(8)])


def test_eight_concurrent_stories(benchmark, engines):
    """Free text at concurrency 8: the case that decides the default (drafting must not cost)."""
    benchmark.group = "speculative 8 concurrent free text"
    _alternate(benchmark, "8 concurrent free text T=1", engines,
               lambda r: [dict(_request("free text T=1", 2000 + 8 * r + i), max_tokens=64) for i in range(8)])


def _fmt(v, spec=".2f"):
    return "-" if v is None else format(v, spec)


def test_table(capsys):
    if not RESULTS:
        pytest.skip("run the whole module")
    load = os.getloadavg()
    header = (f"model {MODEL}, {os.cpu_count()} CPU threads, median of {ROUNDS} alternating rounds; "
              f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} (shared machine: figures are noisy)")
    lines = [header, "", "| workload | tokens | off tok/s | on tok/s | on/off | goal | acceptance | mean accepted run |",
             "|---|---|---|---|---|---|---|---|"]
    for label, r in RESULTS.items():
        goal = GOALS.get(label)
        lines.append(f"| {label} | {r['tokens']} | {r['off_tok_s']:.1f} | {r['on_tok_s']:.1f} | {r['ratio']:.2f}x | "
                     f"{'-' if goal is None else f'>= {goal}x'} | {_fmt(r['acceptance'])} | "
                     f"{_fmt(r['mean_accepted'], '.1f')} |")
    text = "\n".join(lines)
    OUT.mkdir(exist_ok=True)
    stem = OUT / f"speculative_{MODEL}{os.environ.get('SPEC_BENCH_TAG', '')}"
    stem.with_suffix(".md").write_text(text + "\n")
    stem.with_suffix(".json").write_text(json.dumps({"header": header, "results": RESULTS}, indent=2) + "\n")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        plt = None
        text += "\n(matplotlib is not installed: no PNG)"
    if plt is not None:
        fig, ax = plt.subplots(figsize=(9, 4))
        labels = list(RESULTS)
        bars = ax.bar(range(len(labels)), [RESULTS[k]["ratio"] for k in labels])
        ax.bar_label(bars, fmt="%.2fx", fontsize=8)
        ax.axhline(1.0, color="grey", linewidth=0.8)
        ax.set_xticks(range(len(labels)), labels, rotation=25, ha="right", fontsize=8)
        ax.set_ylabel("tokens/s, speculation on / off")
        ax.set_title(header, fontsize=7)
        fig.tight_layout()
        fig.savefig(stem.with_suffix(".png"), dpi=120)
        plt.close(fig)
    with capsys.disabled():
        print("\n" + text)
