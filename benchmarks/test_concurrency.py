"""The engine loop against llama.cpp's own limit, same run, same threads: K concurrent requests vs a bare
K-sequence llama_decode loop, n=4 vs a bare 4-sequence loop, the worst gap a long prefill puts between the
tokens of running streams, and parallel vs serial sampling of one step's rows.

Run: ./dev bench -k concurrency -s   (the table is printed at the end; nothing gates on an absolute number)

The bare loops run on the engine's own loop thread (`engine.loop.call`): llama.cpp's CPU backend keeps an
OpenMP team per calling thread, and two live teams on a 2-core machine slow every step of both by ~1.5x.
"""
import llama_cpp  # isort: skip  (before numpy)

import os
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import kernels
from engine import Engine
from engine.bench import bare
from engine.registry import load_registry
from engine.rows import sample_rows
from engine.sampler import ChoiceSampler, SamplingPlan

N_TOKENS = 128
PROMPT = "Once upon a time"
THREADS = os.cpu_count() or 1
ROUNDS = 3
TABLE: list[tuple[str, str]] = []


@pytest.fixture(scope="module")
def engine():
    path = load_registry()[1][load_registry()[0]].path
    with Engine(str(path), n_ctx=2304, n_seq_max=8, n_threads=THREADS, lazy_slots=False) as e:
        yield e


@pytest.fixture(scope="module")
def ban(engine):
    return {str(t): -100 for t in engine.model.eog_tokens}


def _concurrent(engine, ban, k: int) -> float:
    """Wall time of k requests (n=1, N_TOKENS each) started together from k threads."""
    start = threading.Barrier(k + 1)

    def one(i):
        start.wait()
        r = engine.create_completion(prompt=PROMPT, max_tokens=N_TOKENS, temperature=1.0, top_p=0.9, seed=i,
                                     logit_bias=ban)
        assert r["usage"]["completion_tokens"] == N_TOKENS
    threads = [threading.Thread(target=one, args=(i,)) for i in range(k)]
    for t in threads:
        t.start()
    start.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    return time.perf_counter() - t0


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _alternate(ours, limit) -> tuple[float, float]:
    """Medians over ROUNDS of each contender, alternated round by round (after one warm-up each)."""
    ours(), limit()
    a, b = [], []
    for _ in range(ROUNDS):
        a.append(ours())
        b.append(limit())
    return statistics.median(a), statistics.median(b)


@pytest.mark.parametrize("k", [4, 8])
def test_k_concurrent_requests_vs_bare_k_sequence_loop(benchmark, engine, ban, k):
    prompt = engine.model.tokenize(PROMPT)

    def run():
        return _alternate(lambda: _concurrent(engine, ban, k),
                          lambda: _timed(lambda: engine.loop.call(lambda: bare.generate(engine.model, prompt, N_TOKENS, k))))
    ours, limit = benchmark.pedantic(run, rounds=1, iterations=1)
    TABLE.append((f"{k} concurrent requests (n=1) vs bare {k}-sequence loop: aggregate tok/s ratio",
                  f"{limit / ours:.2f}x ({k * N_TOKENS / ours:.0f} vs {k * N_TOKENS / limit:.0f} tok/s)"))


def test_n4_vs_bare_4_sequence_loop(benchmark, engine, ban):
    prompt = engine.model.tokenize(PROMPT)

    def ours():
        return _timed(lambda: engine.create_completion(prompt=PROMPT, n=4, max_tokens=N_TOKENS, temperature=1.0,
                                                       top_p=0.9, seed=1, logit_bias=ban))
    ours_s, limit_s = benchmark.pedantic(
        lambda: _alternate(ours, lambda: _timed(
            lambda: engine.loop.call(lambda: bare.generate(engine.model, prompt, N_TOKENS, 4)))),
        rounds=1, iterations=1)
    TABLE.append(("one request n=4 vs bare 4-sequence loop: tok/s ratio", f"{limit_s / ours_s:.2f}x"))


def test_long_prefill_gap_in_running_streams(benchmark, engine, ban):
    """4 streams decode; a 2,000-token prompt arrives. The prompt is prefilled in chunks that share each step
    with the streams, so a stream's worst gap is about one chunk's step, not the whole prefill."""
    long_prompt = " ".join(f"item {i}" for i in range(430))
    n_long = len(engine.model.tokenize(long_prompt))
    assert n_long >= 2000

    def run():
        gaps = []
        stamps = [[] for _ in range(4)]

        def stream(i):
            for _ in engine.create_completion(prompt=PROMPT, max_tokens=200, temperature=1.0, seed=i,
                                              logit_bias=ban, stream=True):
                stamps[i].append(time.perf_counter())
        threads = [threading.Thread(target=stream, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        while min(len(s) for s in stamps) < 10:
            time.sleep(0.005)
        t0 = time.perf_counter()
        engine.create_completion(prompt=long_prompt, max_tokens=1, temperature=0)
        prefill_s = time.perf_counter() - t0
        for t in threads:
            t.join()
        for s in stamps:
            during = [b - a for a, b in zip(s, s[1:]) if b >= t0 and a <= t0 + prefill_s]
            gaps.append(max(during))
        return max(gaps), prefill_s
    worst, prefill_s = benchmark.pedantic(run, rounds=1, iterations=1)
    chunk = engine.loop.scheduler.chunk_while_decoding
    tokens = engine.model.tokenize(long_prompt)[:chunk]
    engine.reset_prefix_cache()
    # (scores every row: an upper bound)
    one_chunk = _timed(lambda: engine.loop.call(lambda: bare.score(engine.model, tokens)))
    TABLE.append((f"worst gap between two tokens of 4 streams while a {n_long}-token prompt is prefilled",
                  f"{worst * 1e3:.0f} ms (whole prefill {prefill_s * 1e3:.0f} ms; one {chunk}-token "
                  f"chunk alone {one_chunk * 1e3:.0f} ms)"))


def test_parallel_sampling_of_16_rows_at_262k(benchmark):
    rng = np.random.default_rng(0)
    n_vocab = 262_144
    rows = (rng.standard_normal((16, n_vocab)) * 3).astype(np.float32)
    plan = SamplingPlan(np.zeros(0, np.int32), np.zeros(0, np.float32), 0.0, 0.0, 1.0, 0.9, 7, 5)
    workspaces = [kernels.Workspace(n_vocab) for _ in range(max(2, THREADS))]
    executor = ThreadPoolExecutor(len(workspaces) - 1)

    def draws(parallel: bool):
        cands = [_Candidate(ChoiceSampler(plan, j, n_vocab, 8)) for j in range(16)]
        out = sample_rows([(c, [r], ()) for c, r in zip(cands, rows)], workspaces, executor if parallel else None)
        return [out[c] for c in cands]

    def same(a, b) -> bool:  # a Draw holds top-k arrays: compare them as arrays
        return all(x.token == y.token and x.logprob == y.logprob and np.array_equal(x.top_ids, y.top_ids)
                   and np.array_equal(x.top_lps, y.top_lps) for run_a, run_b in zip(a, b) for x, y in zip(run_a, run_b))
    assert same(draws(True), draws(False))  # the split never changes a draw
    par, ser = _alternate(lambda: _timed(lambda: draws(True)), lambda: _timed(lambda: draws(False)))
    benchmark.pedantic(lambda: draws(True), rounds=3, iterations=1)
    executor.shutdown()
    TABLE.append((f"sampling 16 rows at vocab 262,144: parallel ({len(workspaces)} threads) / serial time",
                  f"{par / ser:.2f} ({par * 1e3:.1f} vs {ser * 1e3:.1f} ms)"))


class _Candidate:
    def __init__(self, sampler):
        self.sampler = sampler
        self.constraint = None


def test_zz_print_table():
    print("\n\n| measurement | result |\n|---|---|")
    for name, value in TABLE:
        print(f"| {name} | {value} |")
    print(f"\n(threads {THREADS}, llama-cpp-python {llama_cpp.__version__})")
