"""End-to-end throughput on SmolLM2-135M against llama-cpp-python and a bare llama_decode loop, one run.

Run: ./dev bench -k throughput   (the ratio table is printed at the end)
Every generation is forced to its full length (end-of-generation tokens banned in all contenders).

Every figure is compared with a baseline measured in the same test, round by round in alternation (the machine
is shared: the README saw absolute figures move 1.7x between runs, and a burst of other work during one
contender's rounds alone moved a ratio 3x): llama-cpp-python, or the bare loop of engine/bench/bare.py on a
llama.cpp context of its own. The table shows each ratio beside the README's; the run fails only where a ratio
the README says holds falls below a gate set well under it. The n = 4 and best_of = 4 walls are bounded by
llama.cpp's own 4-sequence step, so they are compared with the bare 4-sequence loop and reported, not gated:
the README's old 1.7x bound on n = 4 / n = 1 is missed on this 2-core machine (3.6x; the bare loop's own
4-sequence step costs 2.9x its 1-sequence step).
"""
import llama_cpp  # isort: skip  (before numpy)

import os
import resource
import statistics
import time

import numpy as np
import pytest

from engine import Engine
from engine.bench import bare
from engine.bench.llama_python import load_llama
from engine.model import Model
from engine.registry import load_registry

N_TOKENS = 128
PROMPT = "Once upon a time"
THREADS = os.cpu_count() or 1
RESULTS: dict[str, float] = {}
NOTES: dict[str, str] = {}


@pytest.fixture(scope="module")
def model_path():
    default, entries = load_registry()
    return str(entries[default].path)


@pytest.fixture(scope="module")
def engine(model_path):
    with Engine(model_path, n_ctx=4096, n_threads=THREADS) as e:
        yield e


@pytest.fixture(scope="module")
def bare_model(model_path):
    """The bare loop's own llama.cpp context (the engine's options), 4 sequences."""
    with Model(model_path, n_ctx=4096, n_threads=THREADS, n_seq_max=4) as model:
        yield model


@pytest.fixture(scope="module")
def ban(engine):
    return {str(t): -100 for t in engine.model.eog_tokens}


@pytest.fixture(scope="module")
def llcp(model_path):  # the same weight layout as ours (no repacking)
    llm = load_llama(model_path, False, n_ctx=4096, n_threads=THREADS, verbose=False, seed=1)
    yield llm
    llm.close()


@pytest.fixture(scope="module")
def llcp_all_logits(model_path):
    llm = load_llama(model_path, False, n_ctx=4096, n_threads=THREADS, verbose=False, seed=1, logits_all=True)
    yield llm
    llm.close()


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _alternate(benchmark, contenders: dict, engine, rounds: int = 3) -> None:
    """One warm-up each, then `rounds` rounds in which every contender runs once, in turn; the median of each
    goes to RESULTS (pytest-benchmark records the whole alternation).

    Contenders that are not our engine run on the engine's loop thread (`engine.loop.call`), so that every
    llama_decode of the process comes from one thread: llama.cpp's CPU backend keeps an OpenMP team per
    calling thread, and two live teams on a 2-core machine slowed every step of both by ~1.5x."""
    contenders = {name: fn if name.startswith(("ours", "prefix", "no prefix")) else _on_loop(engine, fn)
                  for name, fn in contenders.items()}

    def run():
        for fn in contenders.values():
            fn()
        times = {name: [] for name in contenders}
        for _ in range(rounds):
            for name, fn in contenders.items():
                times[name].append(_timed(fn))
        return {name: statistics.median(t) for name, t in times.items()}
    RESULTS.update(benchmark.pedantic(run, rounds=1, iterations=1))


def _on_loop(engine, fn):
    return lambda: engine.loop.call(fn)


SAMPLING = dict(temperature=1.0, top_p=0.9, frequency_penalty=0.5)


def _llcp_kwargs(ban):
    return dict(max_tokens=N_TOKENS, temperature=1.0, top_p=0.9, top_k=0, min_p=0, repeat_penalty=1.0,
                frequency_penalty=0.5, logit_bias={int(k): v for k, v in ban.items()})


def test_n1_vs_llama_cpp_python_and_bare_loop(benchmark, engine, bare_model, llcp, ban):
    prompt = bare_model.tokenize(PROMPT)

    def ours():
        r = engine.create_completion(prompt=PROMPT, max_tokens=N_TOKENS, seed=1, logit_bias=ban, **SAMPLING)
        assert r["usage"]["completion_tokens"] == N_TOKENS

    def theirs():
        r = llcp.create_completion(PROMPT, seed=1, **_llcp_kwargs(ban))
        assert r["usage"]["completion_tokens"] == N_TOKENS
    benchmark.group = "n=1 128 tokens"
    _alternate(benchmark, {"ours n=1": ours, "llama-cpp-python n=1": theirs,
                           "bare decode loop": lambda: bare.generate(bare_model, prompt, N_TOKENS, 1)}, engine)


def test_logprobs5_vs_llama_cpp_python_and_bare_loop(benchmark, engine, bare_model, llcp_all_logits, ban):
    prompt = bare_model.tokenize(PROMPT)
    benchmark.group = "n=1 128 tokens logprobs 5"
    _alternate(benchmark, {
        "bare decode loop (logprobs round)": lambda: bare.generate(bare_model, prompt, N_TOKENS, 1),
        "ours n=1 logprobs=5": lambda: engine.create_completion(prompt=PROMPT, max_tokens=N_TOKENS, seed=1,
                                                               logit_bias=ban, logprobs=5, **SAMPLING),
        "llama-cpp-python logprobs=5": lambda: llcp_all_logits.create_completion(PROMPT, seed=1, logprobs=5,
                                                                                 **_llcp_kwargs(ban))}, engine)


def test_n4_and_best_of4_vs_bare_4_sequence_loop(benchmark, engine, bare_model, llcp, ban):
    prompt = bare_model.tokenize(PROMPT)

    def n4():
        r = engine.create_completion(prompt=PROMPT, max_tokens=N_TOKENS, seed=1, logit_bias=ban, n=4, **SAMPLING)
        assert r["usage"]["completion_tokens"] == 4 * N_TOKENS

    def llcp_four():
        for s in range(4):
            llcp.create_completion(PROMPT, seed=s, **_llcp_kwargs(ban))
    benchmark.group = "n=4 128 tokens"
    _alternate(benchmark, {
        "ours n=4": n4,
        "ours best_of=4": lambda: engine.create_completion(prompt=PROMPT, max_tokens=N_TOKENS, seed=1,
                                                          logit_bias=ban, n=1, best_of=4, **SAMPLING),
        "bare 4-sequence loop": lambda: bare.generate(bare_model, prompt, N_TOKENS, 4),
        "llama-cpp-python 4 sequential": llcp_four}, engine, rounds=2)


SCORING_PROMPT = " ".join(f"Sentence {i} says the weather is {['fine', 'grey', 'wet'][i % 3]}." for i in range(60))


def test_prompt_scoring_vs_bare_prefill(benchmark, engine, bare_model):
    tokens = engine.model.tokenize(SCORING_PROMPT)[:512]
    assert len(tokens) == 512

    def ours():
        r = engine.create_completion(prompt=tokens, echo=True, logprobs=5, max_tokens=0)
        assert len(r["choices"][0]["logprobs"]["tokens"]) == 512

    def prefill():
        bare_model.seq_remove(0)
        bare_model.decode(tokens, np.arange(512), np.zeros(512, int), np.arange(512) == 511)
        bare_model.seq_remove(0)
    benchmark.group = "prompt scoring 512 tokens"
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    _alternate(benchmark, {"ours scoring": ours, "bare prefill": prefill}, engine)
    NOTES["peak RSS growth during scoring (KiB)"] = str(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)


SHARED = " ".join(f"Fact {i}: item {i} weighs {i * 3} grams." for i in range(40))


def _shared_prefix_requests(engine, n_requests=20):
    base = engine.model.tokenize(SHARED)[:400]
    suffixes = [engine.model.tokenize(f" Question {q}: which item weighs {q * 3} grams? Answer: item",
                                      add_bos=False)[:20] for q in range(n_requests)]
    return [base + s for s in suffixes]


def test_shared_prefix_with_and_without_reuse(benchmark, engine):
    prompts = _shared_prefix_requests(engine)

    def reuse():
        for p in prompts:
            engine.create_completion(prompt=p, max_tokens=1, temperature=0)

    def no_reuse():
        for p in prompts:
            engine.reset_prefix_cache()
            engine.create_completion(prompt=p, max_tokens=1, temperature=0)
    benchmark.group = "20 requests sharing a 400-token prefix"
    _alternate(benchmark, {"prefix reuse": reuse, "no prefix reuse": no_reuse}, engine, rounds=2)


RATIOS = [
    # (label, numerator, denominator, the README's figure, gate: (">=" or "<=", bound) or None to report only)
    ("ours vs llama-cpp-python, n=1 (speed)", "llama-cpp-python n=1", "ours n=1", "1.31 (0.99 in bench --quick)",
     None),
    ("ours vs bare loop, n=1 (speed)", "bare decode loop", "ours n=1", "1.02 / 0.99", (">=", 0.8)),
    ("ours vs llama-cpp-python, logprobs 5 (speed)", "llama-cpp-python logprobs=5", "ours n=1 logprobs=5",
     "7.35 (1.73 in bench --quick)", (">=", 1.0)),
    ("ours vs bare loop, logprobs 5 (speed)", "bare decode loop (logprobs round)", "ours n=1 logprobs=5",
     "0.99 / 0.84", (">=", 0.7)),
    ("n=4 wall / our n=1 wall", "ours n=4", "ours n=1", "3.60", None),
    ("bare 4-sequence loop wall / bare 1-sequence wall", "bare 4-sequence loop", "bare decode loop", "2.9 a step",
     None),
    ("ours n=4 vs bare 4-sequence loop (speed)", "bare 4-sequence loop", "ours n=4", "0.81 (bench --quick)", None),
    ("best_of=4 wall / our n=1 wall", "ours best_of=4", "ours n=1", "3.29", None),
    ("ours best_of=4 vs bare 4-sequence loop (speed)", "bare 4-sequence loop", "ours best_of=4", "-", None),
    ("n=4 vs 4 sequential llama-cpp-python (speed)", "llama-cpp-python 4 sequential", "ours n=4", "1.32", None),
    ("scoring / bare prefill (time)", "ours scoring", "bare prefill", "1.05", ("<=", 1.5)),
    ("prefix reuse vs none (speed)", "no prefix reuse", "prefix reuse", "27.9", (">=", 4.0)),
]


def test_ratio_table(capsys):
    missing = {n for _, a, b, _, _ in RATIOS for n in (a, b)} - set(RESULTS)
    if missing:
        pytest.skip(f"run the whole module: missing {sorted(missing)}")
    lines = ["| measurement | ratio | README | gate | ok |", "|---|---|---|---|---|"]
    failures = []
    for label, a, b, readme, gate in RATIOS:
        ratio = RESULTS[a] / RESULTS[b]
        ok = gate is None or (ratio >= gate[1] if gate[0] == ">=" else ratio <= gate[1])
        shown = "-" if gate is None else f"{gate[0]} {gate[1]}"
        lines.append(f"| {label} | {ratio:.2f} | {readme} | {shown} | {'yes' if ok else 'NO'} |")
        if not ok:
            failures.append(label)
    lines.append("")
    lines += [f"{name}: {RESULTS[name] * 1e3:.0f} ms" for name in sorted(RESULTS)]
    lines += [f"{k}: {v}" for k, v in NOTES.items()]
    lines.append(f"ours n=1: {N_TOKENS / RESULTS['ours n=1']:.1f} tok/s; llama-cpp-python: "
                 f"{N_TOKENS / RESULTS['llama-cpp-python n=1']:.1f} tok/s; bare: "
                 f"{N_TOKENS / RESULTS['bare decode loop']:.1f} tok/s")
    with capsys.disabled():
        print("\n" + "\n".join(lines))
    assert not failures, failures
