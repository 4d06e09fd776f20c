"""top_p (nucleus) selection and the inverse-CDF draw, without sorting the vocabulary.

Definitions shared with reference.py:
- Order tokens by (weight descending, id ascending). The nucleus is the shortest prefix of that order whose
  mass reaches (top_p - TOP_P_EPS) * total; the slack keeps hand-written cases such as top_p = 0.8 on
  probabilities (0.5, 0.3, ...) from depending on the last bit of a sum.
- The nucleus is described by its last member (boundary weight w_b, boundary id i_b): token i is in it iff
  w[i] > w_b or (w[i] == w_b and i <= i_b).
- A draw u in [0, 1) picks the first member, in id order, at which the running mass exceeds u * mass.

Masses are fixed() sums (exact integers in units of 2**-40), so no summation order can change a result.
Peaked weights: the few candidates above a threshold are gathered (blocks whose largest weight is below it
are skipped). Flat weights (more than GATHER_LIMIT candidates): vectorised mass passes narrow a weight
interval [lo, hi) around the boundary until few blocks hold a candidate, and only those are gathered.
Either way the candidates are then bisected on their float bits (no sort).
"""
import math

import numpy as np
from numba import njit, uint64

from .bits import float_to_int_bits, int_bits_to_float
from .blocks import BLOCK, describe, n_blocks, rows
from .fastexp import FIXED_UNIT, fixed
from .select import argmax
from .simd import wide_vectors

TOP_P_EPS = 1e-6
GATHER_LIMIT = 1024  # candidate sets up to this size are gathered and bisected directly
# Flat weights: narrow until at most max(_GATHER_BLOCKS, n_blocks / 4) blocks hold a candidate. Reading a
# block token by token costs about what a vectorised pass spends on 9 blocks, and a round is two passes.
_GATHER_BLOCKS = 8
_FIRST_THRESHOLD = np.float32(2.0 ** -10)
_SMALLEST = np.float32(2.0 ** -126)  # below every positive weight exp_one produces (>= 2**-125)


@njit(cache=True, nogil=True)
def _gather(w, w_max, lo, hi, ids, limit):
    """Ids (ascending) with lo <= w < hi into ids, and their mass; (-1, 0) once there are more than limit
    (checked per block: ids needs limit + BLOCK entries). Branch-free: the id is always written, the count
    advances only for a candidate, so a random pattern of hits costs no mispredictions."""
    lo_bits = float_to_int_bits(lo)
    n = 0
    mass = np.int64(0)
    for b in range(w_max.size):
        if w_max[b] < lo_bits:
            continue
        for i in range(b * BLOCK, min((b + 1) * BLOCK, w.size)):
            v = w[i]
            hit = (v >= lo) & (v < hi)
            ids[n] = i
            n += hit
            mass += fixed(v) if hit else np.int64(0)
        if n > limit:
            return -1, np.int64(0)
    return n, mass


@njit(cache=True, nogil=True)
def _mass_at_or_above(w, w_max, threshold, block_counts):
    """(mass, count) of the weights >= threshold, one vectorised pass over the blocks that can hold one;
    block_counts[b] (when not empty) receives block b's count."""
    wide_vectors()
    t_bits = float_to_int_bits(threshold)
    keep_counts = block_counts.size > 0
    mass = np.int64(0)
    count = 0
    for b in range(w_max.size):
        c = 0
        if w_max[b] >= t_bits:
            for i in range(uint64(b * BLOCK), uint64(min(b * BLOCK + BLOCK, w.size))):  # unsigned: vectorises
                v = w[i]
                keep = v >= threshold
                mass += fixed(v) if keep else np.int64(0)
                c += 1 if keep else 0
        count += c
        if keep_counts:
            block_counts[b] = c
    return mass, count


@njit(cache=True, nogil=True)
def _finish(w, ids, count, lo, hi, mass_before, target):
    """ids[:count] (ascending) are every weight in [lo, hi), mass_before is the mass at or above hi, and
    mass_before + their mass >= target. Bisect [lo, hi) on float bits over the candidates, dropping the
    half the boundary is not in, until one candidate or one weight value is left; then walk in id order
    (equal weights are in nucleus order by id). No sort: numba's is slow, and this touches ~2 * count."""
    if count == 0:  # nothing left (cannot happen for a positive total); keep the caller's indexing safe
        return np.float32(0.0), 0, mass_before
    lo_bits = np.int64(float_to_int_bits(lo))
    hi_bits = np.int64(float_to_int_bits(hi))
    n = count
    while n > 1 and hi_bits - lo_bits > 1:
        mid_bits = lo_bits + (hi_bits - lo_bits) // 2
        mid = int_bits_to_float(np.int32(mid_bits))
        above = np.int64(0)
        for r in range(n):
            v = w[ids[r]]
            above += fixed(v) if v >= mid else np.int64(0)
        upper = mass_before + above >= target  # the boundary is at or above mid
        if upper:
            lo_bits = mid_bits
        else:
            hi_bits = mid_bits
            mass_before += above
        m = 0
        for r in range(n):  # keep the surviving half, in id order
            t = ids[r]
            ids[m] = t
            m += (w[t] >= mid) == upper
        n = m
    cum = mass_before
    t = ids[0]
    for r in range(n):
        t = ids[r]
        cum += fixed(w[t])
        if cum >= target:
            break
    return w[t], t, cum


@njit(cache=True, nogil=True)
def _finish_in_id_order(w, value, mass_before, target):
    """Every candidate left has weight `value`: id order is the nucleus order."""
    cum = mass_before
    q = fixed(value)
    last = 0
    for i in range(w.size):
        if w[i] == value:
            cum += q
            last = i
            if cum >= target:
                break
    return value, last, cum


@njit(cache=True, nogil=True)
def _gather_blocks(w, lo, hi, counts_lo, counts_hi, ids):
    """Ids (ascending) with lo <= w < hi, reading only blocks whose counts say they hold one."""
    n = 0
    for b in range(counts_lo.size):
        if counts_lo[b] == counts_hi[b]:
            continue
        for i in range(b * BLOCK, min((b + 1) * BLOCK, w.size)):
            v = w[i]
            ids[n] = i
            n += (v >= lo) & (v < hi)
    return n


@njit(cache=True, nogil=True)
def _bits_where(samples, lo_bits, hi_bits, goal, by_mass, scale):
    """Bisect float bits in [lo_bits, hi_bits) for the largest t with (scale * fixed mass, or count) of
    samples >= t reaching goal. Integer sums without branches, so each step is one vectorised pass."""
    wide_vectors()
    while hi_bits - lo_bits > 1:
        mid = lo_bits + (hi_bits - lo_bits) // 2
        t = int_bits_to_float(np.int32(mid))
        acc = np.int64(0)
        for i in range(samples.size):
            v = samples[i]
            acc += (fixed(v) if by_mass else np.int64(1)) if v >= t else np.int64(0)
        if acc * scale >= goal:
            lo_bits = mid
        else:
            hi_bits = mid
    return lo_bits


@njit(cache=True, nogil=True)
def _sampled_bracket(w, lo_bits, hi_bits, mass_hi, target):
    """Two thresholds that very likely bracket the boundary, from every k-th weight (~1024 samples): the
    sampled boundary, widened by 3 standard deviations of the sampled count plus a margin."""
    stride = max(1, w.size // 1024)
    lo = int_bits_to_float(np.int32(lo_bits))
    hi = int_bits_to_float(np.int32(hi_bits))
    picked = np.empty(w.size // stride + 1, np.float32)
    n = 0
    for i in range(0, w.size, stride):
        v = w[i]
        if v >= lo and v < hi:
            picked[n] = v
            n += 1
    samples = picked[:n]
    guess = _bits_where(samples, lo_bits, hi_bits, target - mass_hi, True, np.float64(stride))
    t = int_bits_to_float(np.int32(guess))
    above = 0
    for i in range(n):
        above += samples[i] >= t
    margin = 3.0 * math.sqrt(above * (1.0 - above / (n + 1.0)) + 1.0) + 2.0  # binomial standard deviations
    upper = _bits_where(samples, lo_bits, hi_bits, max(above - margin, 0.0), False, 1.0)
    lower = _bits_where(samples, lo_bits, hi_bits, above + margin, False, 1.0)
    return np.int64(lower), np.int64(upper + 1)


@njit(cache=True, nogil=True)
def _narrow(w, w_max, lo, hi, mass_lo, target, ids, everything):
    """The nucleus when the weights >= lo (mass_lo >= target; every weight is below hi) are too many to
    gather: probe thresholds on both sides of the interpolated boundary, bisecting (on float bits) whenever
    a round fails to halve the candidates, until the blocks holding a candidate are few (reading a block
    token by token is ~10x a vectorised pass). Each probe records per-block counts, so the final gather
    reads only those blocks."""
    nb = w_max.size
    counts_lo = np.empty(nb, np.int64)
    counts_hi = np.zeros(nb, np.int64)
    probe_counts = np.empty(nb, np.int64)
    if everything:  # lo is below every weight: no pass needed to count them
        for b in range(nb):
            counts_lo[b] = min(BLOCK, w.size - b * BLOCK)
        count_lo = w.size
    else:
        _, count_lo = _mass_at_or_above(w, w_max, lo, counts_lo)
    first = True
    hi_bits = np.int64(float_to_int_bits(hi))
    lo_bits = np.int64(float_to_int_bits(lo))
    mass_hi = np.int64(0)
    count_hi = 0
    bisect = False
    while True:
        span = count_lo - count_hi
        busy = 0
        for b in range(nb):
            busy += counts_lo[b] != counts_hi[b]
        if busy <= max(_GATHER_BLOCKS, nb // 4) or span <= _GATHER_BLOCKS:
            n = _gather_blocks(w, lo, hi, counts_lo, counts_hi, ids)
            return _finish(w, ids, n, lo, hi, mass_hi, target)
        if hi_bits - lo_bits <= 1:
            return _finish_in_id_order(w, lo, mass_hi, target)
        if first and span > 16 * GATHER_LIMIT:
            probes = _sampled_bracket(w, lo_bits, hi_bits, mass_hi, target)
        elif bisect:
            probes = (lo_bits + (hi_bits - lo_bits) // 2, np.int64(-1))
        else:
            # Linear model of the mass over [lo, hi); probe span/16 tokens (at least 4) either side of the
            # boundary it predicts.
            lo64, hi64 = np.float64(lo), np.float64(hi)
            guess = lo64 + (hi64 - lo64) * (mass_lo - target) / (mass_lo - mass_hi)
            step = (hi64 - lo64) * max(span / 16, 4.0) / span
            probes = (np.int64(float_to_int_bits(np.float32(guess - step))),
                      np.int64(float_to_int_bits(np.float32(guess + step))))
        for p_bits in probes:
            if p_bits <= lo_bits or p_bits >= hi_bits:
                continue
            p = int_bits_to_float(np.int32(p_bits))
            m, c = _mass_at_or_above(w, w_max, p, probe_counts)
            if m >= target:
                lo, lo_bits, mass_lo, count_lo = p, p_bits, m, c
                counts_lo, probe_counts = probe_counts, counts_lo
            else:
                hi, hi_bits, mass_hi, count_hi = p, p_bits, m, c
                counts_hi, probe_counts = probe_counts, counts_hi
        bisect = count_lo - count_hi > span // 2
        first = False


@njit(cache=True, nogil=True)
def nucleus_in_blocks(w, w_max, w_low, total, top_p, ids):
    """Find the nucleus of non-negative float32 weights w whose fixed() sum is total, with w_max the
    per-block bounds of weigh/describe and w_low <= every weight. Returns (boundary weight, boundary id, nucleus mass as fixed()).
    Uses ids (int32, vocab-sized) as scratch; w is not changed."""
    target = (top_p - TOP_P_EPS) * np.float64(total)
    if target <= 0.0:  # the first token of the order alone
        i = argmax(w)
        return w[i], i, fixed(w[i])
    top = np.int64(0)
    for b in range(w_max.size):
        top = max(top, w_max[b])
    above_all = int_bits_to_float(np.int32(top + 1))
    threshold = _FIRST_THRESHOLD
    while True:  # the nucleus lies inside {w >= threshold} once that set holds enough mass
        n, mass = _gather(w, w_max, threshold, above_all, ids, GATHER_LIMIT)
        if n < 0:
            break
        if mass >= target or threshold <= _SMALLEST:
            return _finish(w, ids, n, threshold, above_all, np.int64(0), target)
        threshold = max(threshold * _FIRST_THRESHOLD, _SMALLEST)
    if w_low >= threshold:  # every weight is a candidate (flat)
        return _narrow(w, w_max, w_low, above_all, total, target, ids, True)
    none = np.empty(0, np.int64)
    mass, _ = _mass_at_or_above(w, w_max, threshold, none)
    while mass < target and threshold > _SMALLEST:
        threshold = max(threshold * _FIRST_THRESHOLD, _SMALLEST)
        mass, _ = _mass_at_or_above(w, w_max, threshold, none)
    return _narrow(w, w_max, threshold, above_all, mass, target, ids, False)


@njit(cache=True, nogil=True)
def draw_nucleus_in_blocks(w, w_max, w_b, i_b, mass, u):
    """The member of the nucleus (w_b, i_b) where the id-ordered running fixed() mass exceeds u * mass.
    Blocks without members are skipped on their bound; a block is walked token by token only when the
    draw lands in it or it holds a tie with the boundary weight."""
    wide_vectors()
    goal = u * np.float64(mass)
    cum = np.int64(0)
    last = i_b
    wb_bits = float_to_int_bits(w_b)
    for b in range(w_max.size):
        if w_max[b] < wb_bits:
            continue
        lo = b * BLOCK
        hi = min(lo + BLOCK, w.size)
        s = np.int64(0)
        ties = 0
        for i in range(uint64(lo), uint64(hi)):  # unsigned bounds: vectorises
            v = w[i]
            s += fixed(v) if v > w_b else np.int64(0)
            ties += 1 if v == w_b else 0
        if ties == 0 and cum + s <= goal:
            cum += s
            continue
        for i in range(lo, hi):
            v = w[i]
            if v > w_b or (v == w_b and i <= i_b):
                cum += fixed(v)
                last = i
                if cum > goal:
                    return i
    return last


@njit(cache=True, nogil=True)
def draw_all_in_blocks(w, w_sum, total, u):
    """The token where the id-ordered running fixed() sum of all weights exceeds u * total (top_p = 1)."""
    goal = u * np.float64(total)
    cum = np.int64(0)
    last = 0
    nb = w_sum.size
    for b in range(nb):
        if cum + w_sum[b] <= goal and b < nb - 1:
            cum += w_sum[b]
            continue
        for i in range(b * BLOCK, min((b + 1) * BLOCK, w.size)):
            v = w[i]
            if v > 0.0:
                cum += fixed(v)
                last = i
                if cum > goal:
                    return i
    return last


# Stand-alone forms over weights alone (tests and reference comparisons); the fused step uses the above.

@njit(cache=True, nogil=True)
def nucleus_boundary(weights, total, top_p, ids_scratch, blocks):
    """Find the nucleus of non-negative float32 `weights` (max ~1; `total` is ignored in favour of their
    exact fixed() sum). Returns (boundary weight, boundary id, nucleus mass). Uses ids_scratch (int32,
    vocab-sized) and blocks (blocks.blocks_size) as scratch; weights are not changed."""
    _, w_sum, w_max, _ = rows(blocks, weights.size)
    total_q = describe(weights, w_sum, w_max)
    w_b, i_b, mass = nucleus_in_blocks(weights, w_max, np.float32(0.0), total_q, top_p, ids_scratch)
    return w_b, i_b, mass * FIXED_UNIT


@njit(cache=True, nogil=True)
def draw_in_nucleus(weights, boundary_weight, boundary_id, mass, u):
    """The member of the nucleus (boundary_weight, boundary_id) where the id-ordered running mass exceeds
    u * mass."""
    w_sum = np.empty(n_blocks(weights.size), np.int64)
    w_max = np.empty_like(w_sum)
    describe(weights, w_sum, w_max)
    return draw_nucleus_in_blocks(weights, w_max, boundary_weight, boundary_id, mass / FIXED_UNIT, u)


@njit(cache=True, nogil=True)
def draw_all(weights, total, u):
    """The token where the id-ordered running sum of all weights exceeds u * total (top_p = 1)."""
    w_sum = np.empty(n_blocks(weights.size), np.int64)
    w_max = np.empty_like(w_sum)
    describe(weights, w_sum, w_max)
    return draw_all_in_blocks(weights, w_sum, total / FIXED_UNIT, u)
