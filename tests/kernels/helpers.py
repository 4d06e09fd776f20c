"""Call kernels.sample_step with keyword arguments and the engine's defaults (tests only)."""
import os

import numpy as np

import kernels

JIT_DISABLED = os.environ.get("NUMBA_DISABLE_JIT") == "1"
_EMPTY_I = np.zeros(0, np.int32)
_EMPTY_F = np.zeros(0, np.float32)


def step(raw, ws=None, bias=None, counts=None, frequency=0.0, presence=0.0, temperature=1.0, top_p=1.0,
         seed=0, choice=0, step=0, n_top=-1):
    """Returns (token, logprob, top ids, top logprobs, counts after). `counts` is a dense vocab array."""
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
    token, lp, _ = kernels.sample_step(
        raw, ws.work, ws.weights, ws.ids_scratch, ws.blocks, bias_ids, bias_vals,
        counts, occurred, n_occ, frequency, presence, temperature, top_p, kernels.seed_to_u64(seed),
        choice, step, n_top, top_ids, top_lps)
    k = max(n_top, 0)
    return int(token), float(lp), top_ids[:k].tolist(), top_lps[:k].copy(), counts
