"""Argmax and top-k by partial selection (never a sort of the vocabulary). Ties go to the lowest id."""
import numpy as np
from numba import njit

_BLOCK = 64


@njit(cache=True, nogil=True, fastmath=False)
def max_value(x):
    """Largest value of x (NaN ignored; -inf when nothing else); pure."""
    m = -np.inf
    for i in range(x.size):
        if x[i] > m:
            m = x[i]
    return m


@njit(cache=True, nogil=True)
def argmax(x):
    """Index of the largest value, lowest index among ties (0 when every value is -inf or NaN); pure."""
    m = max_value(x)
    for i in range(x.size):
        if x[i] == m:
            return i
    return 0


@njit(cache=True, nogil=True)
def top_k(x, k, out_ids):
    """Write the ids of the k largest values of x into out_ids[:k], largest first, ties by lowest id.
    Blocks whose maximum cannot enter the current top k are skipped after one vectorised max."""
    k = min(k, x.size)
    vals = np.full(k, -np.inf, dtype=np.float64)
    filled = 0
    n = x.size
    for start in range(0, n, _BLOCK):
        stop = min(start + _BLOCK, n)
        if filled == k and k > 0:
            block_max = max_value(x[start:stop])
            if not block_max > vals[k - 1]:
                continue
        for i in range(start, stop):
            v = x[i]
            if filled < k:
                pos = filled
                filled += 1
            elif v > vals[k - 1]:
                pos = k - 1
            else:
                continue
            # Insert, shifting strictly smaller entries down: equal values keep the earlier (lower) id first.
            while pos > 0 and v > vals[pos - 1]:
                vals[pos] = vals[pos - 1]
                out_ids[pos] = out_ids[pos - 1]
                pos -= 1
            vals[pos] = v
            out_ids[pos] = i
    return k
