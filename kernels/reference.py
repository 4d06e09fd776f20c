"""Plain NumPy twins of every kernel, written for clarity; used only by tests and benchmarks.

They follow the same definitions (see nucleus.py) but compute them the obvious way: full sorts,
np.exp, Python integers for the RNG.
"""
from __future__ import annotations

import numpy as np

from .nucleus import TOP_P_EPS

_MASK = (1 << 64) - 1


def splitmix64(x: int) -> int:
    z = (x + 0x9E3779B97F4A7C15) & _MASK
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
    return z ^ (z >> 31)


def uniform(seed: int, choice: int, step: int) -> float:
    h = splitmix64(seed & _MASK)
    h = splitmix64(h ^ choice)
    h = splitmix64(h ^ step)
    return (h >> 11) / 2.0 ** 53


def apply_logit_bias(logits, bias_ids, bias_values):
    out = logits.astype(np.float32).copy()
    np.add.at(out, bias_ids, np.asarray(bias_values, np.float32))
    return out


def apply_penalties(logits, counts, frequency, presence):
    """counts: a dense vocab-sized array of how often each token was generated."""
    counts = np.asarray(counts)
    out = logits.astype(np.float32).copy()
    out -= (counts * np.float32(frequency) + (counts > 0) * np.float32(presence)).astype(np.float32)
    return out


def argmax(x) -> int:
    return int(np.argmax(np.where(np.isnan(x), -np.inf, x)))


def top_k(x, k: int):
    order = np.lexsort((np.arange(x.size), -x.astype(np.float64)))  # value desc, id asc
    return order[:k]


def log_softmax(x):
    x64 = x.astype(np.float64)
    m = x64.max()
    return x64 - (m + np.log(np.exp(x64 - m).sum()))


def weights(x, temperature: float):
    x64 = x.astype(np.float64)
    return np.exp((x64 - x64.max()) / temperature)


def nucleus_mask(w, top_p: float, total: float | None = None):
    """Boolean mask of the nucleus of weights w: shortest (weight desc, id asc) prefix reaching the target.
    `total` defaults to the exact sum of w (the kernel passes its own float32-block sum)."""
    order = np.lexsort((np.arange(w.size), -w))
    cum = np.cumsum(w[order])
    target = (top_p - TOP_P_EPS) * (w.sum() if total is None else total)
    last = min(int(np.searchsorted(cum, target, side="left")), w.size - 1)
    mask = np.zeros(w.size, bool)
    mask[order[: last + 1]] = True
    return mask


def draw(w, mask, u: float) -> int:
    """First id (ascending) where the running mass of the masked weights exceeds u * their total."""
    ww = np.where(mask, w, 0.0)
    cum = np.cumsum(ww)
    idx = int(np.searchsorted(cum, u * cum[-1], side="right"))
    return min(idx, int(np.flatnonzero(ww > 0)[-1]))


def target_distribution(raw, bias_ids=(), bias_values=(), counts=None, frequency=0.0, presence=0.0,
                        temperature=1.0, top_p=1.0):
    """The exact distribution sample_step draws from (float64, sums to 1)."""
    x = apply_logit_bias(raw, np.asarray(bias_ids, np.int64), bias_values)
    if counts is not None:
        x = apply_penalties(x, counts, frequency, presence)
    w = weights(x, temperature)
    mask = nucleus_mask(w, top_p) if top_p < 1.0 else w > 0
    p = np.where(mask, w, 0.0)
    return p / p.sum()


def sample_step(raw, bias_ids=(), bias_values=(), counts=None, frequency=0.0, presence=0.0,
                temperature=1.0, top_p=1.0, seed=0, choice=0, step=0, n_top=-1):
    """Twin of kernels.sample_step: returns (token, raw logprob or nan, top ids, top logprobs)."""
    x = apply_logit_bias(raw, np.asarray(bias_ids, np.int64), bias_values)
    if counts is not None:
        x = apply_penalties(x, counts, frequency, presence)
    if temperature < 1e-30 or not np.isfinite(x.max()):
        token = argmax(x)
    else:
        w = weights(x, temperature)
        mask = nucleus_mask(w, top_p) if top_p < 1.0 else w > 0
        token = draw(w, mask, uniform(seed, choice, step))
    if n_top < 0:
        return token, float("nan"), np.empty(0, np.int64), np.empty(0)
    lsm = log_softmax(raw)
    ids = top_k(raw, n_top)
    return token, float(lsm[token]), ids, lsm[ids]


def mask_logits(row, bitmask):
    """Twin of kernels.mask_logits: (masked copy, allowed count)."""
    n = row.size
    words = np.zeros((n + 31) // 32, np.uint32)
    m = min(words.size, bitmask.size)
    words[:m] = bitmask[:m].view(np.uint32)
    bits = ((words[np.arange(n) // 32] >> (np.arange(n) % 32).astype(np.uint32)) & 1).astype(bool)
    return np.where(bits, row, np.float32(-np.inf)).astype(np.float32), int(bits.sum())
