"""The fused sampling step against its NumPy twin and llama.cpp's native sampler chain, same logits, one run.

Workload per call (issue: kernels): 8 logit_bias entries, frequency/presence penalties over 64 generated
tokens, temperature 0.8, top_p 0.95, one seeded draw, top-5 logprobs; single-threaded.
Run: ./dev bench -k kernel   (the table is printed at the end)

The issue's microsecond targets are reported beside each figure, never asserted: the README says this machine
misses them. What fails the run is a regression of a same-run ratio the README says holds: the fused step is
at least 22x its NumPy twin and 12x llama.cpp's chain in every row there (two runs a day apart moved single
ratios by up to 2.3x), so the gates sit at half those: 10x and 6x.
"""
# llama_cpp before numpy (the GPU machine crashed the other way round).
import llama_cpp  # isort: skip

import ctypes
from pathlib import Path

import numpy as np
import pytest

import kernels
from kernels import reference as ref

DATA = Path(__file__).parent / "data"
VOCABS = [49_152, 152_064, 262_144]
RESULTS: dict[tuple[str, int, str], float] = {}  # (shape, vocab, impl) -> mean seconds


def _logits(shape: str, v: int) -> np.ndarray:
    if shape == "flat":  # worst case for a nucleus: nearly every token inside it
        return (np.random.default_rng(v).standard_normal(v) * 0.1).astype(np.float32)
    saved = {49_152: "smollm2_logits.npy", 262_144: "gemma3_logits.npy"}.get(v)
    if saved:  # a real logits row from the model of that vocabulary
        return np.load(DATA / saved).astype(np.float32)
    rng = np.random.default_rng(v)  # Zipf-shaped: log-probability falling like -1.1 log(rank)
    x = -1.1 * np.log1p(rng.permutation(v)) + rng.standard_normal(v) * 0.5
    return (x * 1.6 + 10).astype(np.float32)


def _workload(v: int):
    rng = np.random.default_rng(1)
    history = rng.integers(0, v, 64)
    counts = np.zeros(v, np.int32)
    np.add.at(counts, history, 1)
    bias_ids = rng.choice(v, 8, replace=False).astype(np.int32)
    bias_vals = rng.uniform(-5, 5, 8).astype(np.float32)
    return history, counts, bias_ids, bias_vals


class OurStep:
    def __init__(self, raw):
        v = raw.size
        self.raw = raw
        _, self.counts, self.bias_ids, self.bias_vals = _workload(v)
        self.occurred = np.zeros(v, np.int32)
        nz = np.flatnonzero(self.counts)
        self.occurred[: nz.size] = nz
        self.n_occ = nz.size
        self.ws = kernels.Workspace(v)
        self.top_ids, self.top_lps = np.zeros(5, np.int32), np.zeros(5, np.float64)
        self.seed = kernels.seed_to_u64(7)
        self.step_no = 0

    def __call__(self):
        ws = self.ws
        self.step_no += 1
        token, _, _ = kernels.sample_token(self.raw, ws, key=self.seed, step=self.step_no, temperature=0.8,
                                           top_p=0.95, bias_ids=self.bias_ids, bias_values=self.bias_vals,
                                           counts=self.counts, occurred=self.occurred, n_occurred=self.n_occ,
                                           frequency=0.5, presence=0.3, n_top=5, top_ids=self.top_ids,
                                           top_lps=self.top_lps)
        # Hold the penalty state fixed (the llama.cpp chain is not fed the token either): the step counted
        # the token; uncount it. (occurred only grows past n_occ, which the next call ignores.)
        self.counts[token] -= 1
        return token


class LlamaChain:
    """llama.cpp's sampler chain: logit bias + penalties + temp + top_p + dist, on a filled candidate array
    (exactly what llama_sampler_sample does internally each step)."""

    def __init__(self, raw):
        v = raw.size
        self.raw = raw
        history, _, bias_ids, bias_vals = _workload(v)
        params = llama_cpp.llama_sampler_chain_default_params()
        params.no_perf = True
        self.chain = llama_cpp.llama_sampler_chain_init(params)
        biases = (llama_cpp.llama_logit_bias * 8)(*[llama_cpp.llama_logit_bias(int(t), float(b))
                                                     for t, b in zip(bias_ids, bias_vals)])
        for s in (llama_cpp.llama_sampler_init_logit_bias(v, 8, biases),
                  llama_cpp.llama_sampler_init_penalties(v, 64, 1.0, 0.5, 0.3),
                  llama_cpp.llama_sampler_init_temp(0.8),
                  llama_cpp.llama_sampler_init_top_p(0.95, 1),
                  llama_cpp.llama_sampler_init_dist(7)):
            llama_cpp.llama_sampler_chain_add(self.chain, s)
        for t in history:
            llama_cpp.llama_sampler_accept(self.chain, int(t))
        self.data = (llama_cpp.llama_token_data * v)()
        self.view = np.ctypeslib.as_array(ctypes.cast(self.data, ctypes.POINTER(ctypes.c_float)), shape=(v, 3))
        self.view[:, 0] = np.arange(v, dtype=np.int32).view(np.float32)
        self.array = llama_cpp.llama_token_data_array(self.data, v, -1, False)
        self.pointer = ctypes.pointer(self.array)

    def __call__(self):
        self.view[:, 1] = self.raw  # refill candidates (ids stay), as llama_sampler_sample does
        self.view[:, 2] = 0.0
        self.array.size = self.raw.size
        self.array.selected = -1
        self.array.sorted = False
        llama_cpp.llama_sampler_apply(self.chain, self.pointer)
        return self.data[self.array.selected].id

    def close(self):
        llama_cpp.llama_sampler_free(self.chain)


class NumpyTwin:
    def __init__(self, raw):
        self.raw = raw
        _, self.counts, self.bias_ids, self.bias_vals = _workload(raw.size)
        self.step_no = 0

    def __call__(self):
        self.step_no += 1
        return ref.sample_step(self.raw, self.bias_ids, self.bias_vals, self.counts, 0.5, 0.3, 0.8, 0.95, 7, 0,
                               self.step_no, 5)


@pytest.mark.parametrize("impl", ["ours", "llama_cpp_chain", "numpy_twin"])
@pytest.mark.parametrize("v", VOCABS)
@pytest.mark.parametrize("shape", ["peaked", "flat"])
def test_fused_step(benchmark, shape, v, impl):
    raw = _logits(shape, v)
    fn = {"ours": OurStep, "llama_cpp_chain": LlamaChain, "numpy_twin": NumpyTwin}[impl](raw)
    fn()  # warm-up (JIT cache load, first-touch of scratch)
    benchmark.group = f"step {shape} {v}"
    if impl == "numpy_twin":
        benchmark.pedantic(fn, rounds=5, iterations=1)
    else:
        benchmark.pedantic(fn, rounds=200, iterations=5, warmup_rounds=5)
    RESULTS[(shape, v, impl)] = benchmark.stats.stats.median
    if impl == "llama_cpp_chain":
        fn.close()


TARGET_US = {("peaked", 49_152): 80, ("peaked", 152_064): 250, ("peaked", 262_144): 400, ("flat", 152_064): 1000}
MIN_VS_NUMPY = 10.0  # README: 22x to 199x
MIN_VS_CHAIN = 6.0  # README: 12.3x to 27.2x


def test_ratios_and_targets(capsys):
    rows, failures = [], []
    for (shape, v) in [(s, v) for s in ("peaked", "flat") for v in VOCABS]:
        ours = RESULTS.get((shape, v, "ours"))
        chain = RESULTS.get((shape, v, "llama_cpp_chain"))
        twin = RESULTS.get((shape, v, "numpy_twin"))
        if None in (ours, chain, twin):
            pytest.skip("run the whole module: the ratios need every measurement")
        target = TARGET_US.get((shape, v))
        met = "-" if not target else f"{target} ({'met' if ours * 1e6 <= target else 'missed'})"
        rows.append(f"| {shape} | {v} | {ours * 1e6:.0f} | {twin * 1e6:.0f} | {chain * 1e6:.0f} | "
                    f"{twin / ours:.0f}x | {chain / ours:.2f}x | {met} |")
        if twin / ours < MIN_VS_NUMPY:
            failures.append(f"{shape} {v}: only {twin / ours:.1f}x the NumPy twin (gate {MIN_VS_NUMPY}x)")
        if chain / ours < MIN_VS_CHAIN:
            failures.append(f"{shape} {v}: only {chain / ours:.2f}x llama.cpp's chain (gate {MIN_VS_CHAIN}x)")
    table = ["| logits | vocab | ours µs | NumPy µs | llama.cpp chain µs | vs NumPy | vs chain | issue target µs |",
             "|---|---|---|---|---|---|---|---|", *rows]
    with capsys.disabled():
        print("\n" + "\n".join(table))
    assert not failures, failures
