"""Call kernels.sample_step with keyword arguments and the engine's defaults (tests only)."""
import os

import numpy as np

import kernels
from kernels import reference as ref

JIT_DISABLED = os.environ.get("NUMBA_DISABLE_JIT") == "1"
_EMPTY_I = np.zeros(0, np.int32)
_EMPTY_F = np.zeros(0, np.float32)


def _arguments(raw, ws, bias, counts, frequency, presence, temperature, top_p, seed, choice, step, n_top):
    raw = np.asarray(raw, np.float32)
    ws = ws or kernels.Workspace(raw.size)
    bias_ids = np.array(list(bias or {}), np.int32) if bias else _EMPTY_I
    bias_vals = np.array(list((bias or {}).values()), np.float32) if bias else _EMPTY_F
    if counts is not None:
        counts = np.array(counts, np.int32)
        occurred = np.zeros(counts.size + 1, np.int32)
        nz = np.flatnonzero(counts)
        occurred[: nz.size] = nz
        n_occ = nz.size
    else:
        counts, occurred, n_occ = _EMPTY_I, _EMPTY_I, 0
    top_ids = np.zeros(5, np.int32)
    top_lps = np.zeros(5, np.float64)
    return (raw, ws.work, ws.weights, ws.ids_scratch, ws.blocks, bias_ids, bias_vals, counts, occurred, n_occ,
            frequency, presence, temperature, top_p, kernels.seed_to_u64(seed), choice, step, n_top, top_ids,
            top_lps)


def step(raw, ws=None, bias=None, counts=None, frequency=0.0, presence=0.0, temperature=1.0, top_p=1.0,
         seed=0, choice=0, step=0, n_top=-1):
    """Returns (token, logprob, top ids, top logprobs, counts after). `counts` is a dense vocab array."""
    args = _arguments(raw, ws, bias, counts, frequency, presence, temperature, top_p, seed, choice, step, n_top)
    token, lp, _ = kernels.sample_step(*args)
    k = max(n_top, 0)
    return int(token), float(lp), args[-2][:k].tolist(), args[-1][:k].copy(), args[7]


def path_taken(raw, bias=None, counts=None, frequency=0.0, presence=0.0, temperature=1.0, top_p=1.0, seed=0,
               step=0, n_top=-1):
    """Which branch of kernels/step.py sample_step takes: "sparse" (raw weights corrected at the touched
    tokens), "dense" (the adjusted row written out in full: the fallback) or "argmax". Runs the step's own
    Python body (numba's py_func; the kernels it calls stay compiled) with spies on the two calls only those
    branches make; returns (branch, token)."""
    import kernels.step as step_module

    calls = []
    real_dense, real_draw = step_module._choose_dense, step_module._draw

    def dense(*a):
        calls.append("dense")
        return real_dense(*a)

    def draw(*a):
        calls.append("sparse")
        return real_draw(*a)

    body = getattr(step_module.sample_step, "py_func", step_module.sample_step)
    step_module._choose_dense, step_module._draw = dense, draw
    try:
        token, _, _ = body(*_arguments(raw, None, bias, counts, frequency, presence, temperature, top_p, seed, 0,
                                       step, n_top))
    finally:
        step_module._choose_dense, step_module._draw = real_dense, real_draw
    return (calls[0] if calls else "argmax"), int(token)  # interpreted, the dense branch's own _draw follows


def touch_top(raw, rng, n=10):
    """Bias and dense counts such that each of the n largest raw logits carries a penalty count or a bias
    (alternately; the largest both), plus a few random ones elsewhere. With n > 8 none of the raw top 8, where
    kernels/step.py looks for the largest untouched logit, is untouched: on rows longer than that the step
    takes its dense fallback (dense_condition says so, path_taken shows it)."""
    v = raw.size
    top = ref.top_k(raw, n)
    counts = np.zeros(v, np.int32)
    counts[top[0::2]] = rng.integers(1, 4, top[0::2].size)
    counts[rng.integers(0, v, 3)] += 1
    bias = {int(t): float(b) for t, b in zip(top[1::2], rng.uniform(-4.0, 2.0, top[1::2].size))}
    bias[int(top[0])] = 1.5
    for t in rng.integers(0, v, 2):
        bias.setdefault(int(t), float(rng.uniform(-5.0, 5.0)))
    return bias, counts


def dense_condition(raw, bias, counts, n_top=5):
    """kernels/step.py writes the adjusted row out in full (temperature > 0) exactly when no token among the
    raw top max(n_top, 8) is free of bias and penalty and that search did not cover the whole row."""
    from kernels.step import _TOP_FOR_MAX

    k = max(n_top, _TOP_FOR_MAX)
    touched = {int(t) for t in np.flatnonzero(counts)} | set(bias)
    return k < raw.size and all(int(t) in touched for t in ref.top_k(raw, k))
