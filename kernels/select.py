"""Order keys for float32 bits, maxima and argmax (top-k from block maxima is in topk.py). Ties go to the
lowest id."""
import numpy as np
from numba import njit

from .bits import int_bits_to_float
from .simd import wide_vectors


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
    wide_vectors()
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
