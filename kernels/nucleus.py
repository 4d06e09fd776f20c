"""top_p (nucleus) selection and the inverse-CDF draw, without sorting the vocabulary.

Definitions shared with reference.py:
- Order tokens by (weight descending, id ascending). The nucleus is the shortest prefix of that order whose
  mass reaches (top_p - TOP_P_EPS) * total; the slack keeps hand-written cases such as top_p = 0.8 on
  probabilities (0.5, 0.3, ...) from depending on the last bit of a float sum.
- The nucleus is described by its last member (boundary weight w_b, boundary id i_b): token i is in it iff
  w[i] > w_b or (w[i] == w_b and i <= i_b).
- A draw u in [0, 1) picks the first member, in id order, at which the running mass exceeds u * mass.
"""
import numpy as np
from numba import njit

from .bits import float_to_int_bits
from .select import max_key, order_key

TOP_P_EPS = 1e-6
SORT_LIMIT = 1024  # candidate sets up to this size are sorted; larger ones are narrowed by radix passes
HIST_SIZE = 2048  # float32 bits >> 19 of a weight in [0, 1] is at most 0x3F800000 >> 19 = 2032
# (shift, mask) of the three radix levels over a weight's float32 bit pattern (monotone for w >= 0).
_LEVELS = ((19, 0x7FF), (9, 0x3FF), (0, 0x1FF))
_FIRST_THRESHOLD = 2.0 ** -10
_BLOCK = 256
_SUM_BLOCK = 1024


@njit(cache=True, nogil=True, fastmath=True)
def _block_mass_at_or_above(weights, threshold):
    mass = np.float32(0.0)
    count = 0
    for i in range(weights.size):
        w = weights[i]
        keep = w >= threshold
        mass += w if keep else np.float32(0.0)
        count += 1 if keep else 0
    return mass, count


@njit(cache=True, nogil=True)
def _mass_at_or_above(weights, threshold):
    """(mass, count) of the weights >= threshold: float32 sums over blocks, added in float64."""
    mass = np.float64(0.0)
    count = 0
    thr = np.float32(threshold)
    for start in range(0, weights.size, _SUM_BLOCK):
        m, c = _block_mass_at_or_above(weights[start:start + _SUM_BLOCK], thr)
        mass += m
        count += c
    return mass, count


@njit(cache=True, nogil=True)
def _gather_at_or_above(weights, threshold, ids_out):
    """Write the ids of weights >= threshold into ids_out (ascending); blocks without one are skipped after a
    vectorised max of their bit patterns (non-negative floats order like their int32 bits)."""
    bits = weights.view(np.int32)
    thr_bits = float_to_int_bits(threshold)
    n = 0
    for start in range(0, weights.size, _BLOCK):
        stop = min(start + _BLOCK, weights.size)
        if max_key(bits, start, stop) < thr_bits:
            continue
        for i in range(start, stop):
            if weights[i] >= threshold:
                ids_out[n] = i
                n += 1
    return n


@njit(cache=True, nogil=True)
def _finish_by_sorting(weights, ids, count, mass_before, target):
    """ids[:count] (ascending) all lie in the boundary region: sort them by (weight desc, id asc) and walk."""
    if count == 0:  # no candidate (cannot happen for a positive total); keep the caller's indexing safe
        return 0.0, ids[0] if ids.size else 0, mass_before
    cand = ids[:count]
    order = np.argsort(-weights[cand], kind="mergesort")  # stable: equal weights stay in id order
    cum = mass_before
    last = cand[order[count - 1]]
    for r in range(count):
        t = cand[order[r]]
        cum += weights[t]
        if cum >= target:
            return weights[t], t, cum
    return weights[last], last, cum


@njit(cache=True, nogil=True)
def nucleus_boundary(weights, total, top_p, ids_scratch, hist):
    """Find the nucleus of non-negative float32 `weights` (max 1) summing to `total`.

    Returns (boundary weight, boundary id, nucleus mass). Uses ids_scratch (int32, vocab-sized) and
    hist (float64, HIST_SIZE) as scratch; weights are not changed.
    """
    target = (top_p - TOP_P_EPS) * total
    threshold = _FIRST_THRESHOLD
    while True:  # the nucleus lies inside {w >= threshold} once that set holds enough mass
        mass, count = _mass_at_or_above(weights, threshold)
        if mass >= target or threshold < 1e-38:
            break
        threshold *= _FIRST_THRESHOLD
    n = _gather_at_or_above(weights, np.float32(threshold), ids_scratch)
    bits = weights.view(np.int32)
    mass_before = np.float64(0.0)
    for level in range(3):
        if n <= SORT_LIMIT:
            return _finish_by_sorting(weights, ids_scratch, n, mass_before, target)
        shift, mask = _LEVELS[level]
        hist[:] = 0.0
        for r in range(n):
            t = ids_scratch[r]
            hist[(bits[t] >> shift) & mask] += weights[t]
        key = mask
        while key > 0 and (hist[key] == 0.0 or mass_before + hist[key] < target):  # skip empty buckets too
            mass_before += hist[key]
            key -= 1
        m = 0
        for r in range(n):  # keep the boundary bucket, in id order (in place: m <= r)
            t = ids_scratch[r]
            if (bits[t] >> shift) & mask == key:
                ids_scratch[m] = t
                m += 1
        n = m
    # All n candidates now share one weight: id order is the nucleus order.
    return _finish_by_sorting(weights, ids_scratch, n, mass_before, target)


@njit(cache=True, nogil=True)
def draw_in_nucleus(weights, boundary_weight, boundary_id, mass, u):
    """The member of the nucleus (boundary_weight, boundary_id) where the id-ordered running mass exceeds u*mass."""
    goal = u * mass
    cum = np.float64(0.0)
    last = boundary_id
    n = weights.size
    bits = weights.view(np.int32)
    boundary_key = order_key(bits[boundary_id])
    for start in range(0, n, _BLOCK):
        stop = min(start + _BLOCK, n)
        if max_key(bits, start, stop) < boundary_key:
            continue  # no member in this block (one vectorised max instead of a branch per token)
        for i in range(start, stop):
            w = weights[i]
            if w > boundary_weight or (w == boundary_weight and i <= boundary_id):
                cum += w
                last = i
                if cum > goal:
                    return i
    return last


@njit(cache=True, nogil=True)
def draw_all(weights, total, u):
    """The token where the id-ordered running sum of all weights exceeds u*total (top_p = 1)."""
    goal = u * total
    cum = np.float64(0.0)
    last = 0
    n = weights.size
    for start in range(0, n, _BLOCK):
        stop = min(start + _BLOCK, n)
        block = _block_sum(weights, start, stop)
        if cum + block <= goal and stop < n:
            cum += block
            continue
        for i in range(start, stop):
            w = weights[i]
            if w > 0.0:
                cum += w
                last = i
                if cum > goal:
                    return i
    return last


@njit(cache=True, nogil=True, fastmath=True)
def _block_sum(weights, start, stop):
    seg = weights[start:stop]  # index from 0 so the loop vectorises
    s = np.float64(0.0)
    for i in range(seg.size):
        s += seg[i]
    return s
