"""Argmax and top-k by partial selection (never a sort of the vocabulary). Ties go to the lowest id."""
import numpy as np
from numba import njit

from .bits import int_bits_to_float

_BLOCK = 256


@njit(cache=True, nogil=True)
def order_key(b):
    """Map float32 bits (as int32) to an int32 whose signed order is the floats' order (NaN excluded)."""
    return b ^ ((b >> 31) & np.int32(0x7FFFFFFF))


@njit(cache=True, nogil=True)
def key_to_float(key):
    """Inverse of order_key, as the float32 itself."""
    return int_bits_to_float(key ^ ((key >> 31) & np.int32(0x7FFFFFFF)))


@njit(cache=True, nogil=True)
def max_key(bits, start, stop):
    """Largest order_key over bits[start:stop] (int32 view of float32 data); vectorises, unlike a float max
    that must respect NaN."""
    seg = bits[start:stop]  # index from 0: numba then drops the negative-index check that blocks SIMD
    m = np.int32(-2147483648)
    for i in range(seg.size):
        m = max(m, order_key(seg[i]))
    return m


@njit(cache=True, nogil=True)
def max_value(x):
    """Largest value of float32 x (-inf for an empty x); pure. Logits must not be NaN."""
    if x.size == 0:
        return -np.inf
    return key_to_float(max_key(x.view(np.int32), 0, x.size))


@njit(cache=True, nogil=True)
def argmax(x):
    """Index of the largest value, lowest index among ties (0 when every value is -inf or NaN); pure."""
    m = max_value(x)
    for i in range(x.size):
        if x[i] == m:
            return i
    return 0  # unreachable for non-NaN input


@njit(cache=True, nogil=True)
def top_k(x, k, out_ids):
    """Write the ids of the k largest values of x into out_ids[:k], largest first, ties by lowest id.
    Blocks whose maximum cannot enter the current top k are skipped after one vectorised max."""
    k = min(k, x.size)
    if k <= 0:
        return 0
    vals = np.full(k, -np.inf, dtype=np.float64)
    filled = 0
    n = x.size
    bits = x.view(np.int32)
    kth_key = np.int32(0)
    for start in range(0, n, _BLOCK):
        stop = min(start + _BLOCK, n)
        if filled == k and k > 0 and max_key(bits, start, stop) <= kth_key:
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
            if filled == k:
                kth_key = order_key(bits[out_ids[k - 1]])
    return k
