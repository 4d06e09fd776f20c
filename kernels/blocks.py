"""Per-block summaries of vocab-sized arrays, so later stages visit only the blocks that matter.

A block is BLOCK consecutive token ids. The scratch `blocks` (int64, blocks_size(n_vocab)) holds four
rows of n_blocks entries: the order key of each block's largest raw logit; each block's weight sum and
largest weight bits (as fixed()/int32 bits, filled by weigh); and a row of scratch for top-k.
"""
import numpy as np
from numba import njit, uint64

from .bits import float_to_int_bits, int_bits_to_float
from .fastexp import exp_factor, exp_one, fixed
from .select import key_to_float, order_key
from .simd import wide_vectors

BLOCK = 256
_MIN_KEY = np.int32(-2147483648)
_MAX_KEY = np.int32(2147483647)


@njit(cache=True, nogil=True)
def n_blocks(n):
    return (n + BLOCK - 1) // BLOCK


def blocks_size(n_vocab: int) -> int:
    return 4 * ((n_vocab + BLOCK - 1) // BLOCK)


@njit(cache=True, nogil=True)
def rows(blocks, n):
    """(raw max keys, weight sums, weight max bits, scratch) for a vocabulary of n tokens."""
    nb = n_blocks(n)
    return blocks[0:nb], blocks[nb:2 * nb], blocks[2 * nb:3 * nb], blocks[3 * nb:4 * nb]


@njit(cache=True, nogil=True)
def block_maxima(x, keys):
    """keys[b] = order key of max(x in block b); returns the order keys of max(x) and min(x) (pure in x)."""
    wide_vectors()
    bits = x.view(np.int32)
    best = _MIN_KEY
    worst = _MAX_KEY
    for b in range(keys.size):
        k = _MIN_KEY
        low = _MAX_KEY
        # Unsigned bounds: numba then emits no negative-index fix-up, which would stop the loop vectorising.
        for i in range(uint64(b * BLOCK), uint64(min(b * BLOCK + BLOCK, x.size))):
            key = order_key(bits[i])
            k = max(k, key)
            low = min(low, key)
        keys[b] = k
        best = max(best, k)
        worst = min(worst, low)
    return best, worst


@njit(cache=True, nogil=True)
def _weight_bits(key, shift, factor):
    return np.int64(float_to_int_bits(exp_one(key_to_float(np.int32(key)), shift, factor)))


@njit(cache=True, nogil=True)
def weight_floor(key, shift, factor):
    """A weight no larger than exp_one of the value with order key `key` (4 ulps below it, or 0)."""
    return int_bits_to_float(np.int32(max(_weight_bits(key, shift, factor) - 4, 0)))


@njit(cache=True, nogil=True)
def weight_bound(key, shift, factor):
    """Bits of an upper bound of exp_one over a block whose largest value has order key `key` (exp_one is
    monotone up to rounding; 4 ulps cover that)."""
    return _weight_bits(key, shift, factor) + 4


@njit(cache=True, nogil=True)
def weigh(x, keys, shift, factor, raw_shift, w, scratch, w_sum, w_max):
    """w = exp_one(x, shift, factor) (factor = log2(e)/temperature), each block's fixed() sum in w_sum and
    a bound of its largest weight's bits in w_max (from keys = block_maxima(x)). Returns (total, raw):
    total is the fixed() sum of w; raw the fixed() sum of exp(x - raw_shift), computed in the same pass into
    `scratch` for the raw log-normaliser (0 when raw_shift is NaN)."""
    wide_vectors()
    shift = np.float32(shift)
    factor = np.float32(factor)
    want_raw = raw_shift == raw_shift
    raw_factor = exp_factor(1.0)
    same = want_raw and np.float32(raw_shift) == shift and factor == raw_factor
    rs = np.float32(raw_shift) if want_raw else np.float32(0.0)
    total = np.int64(0)
    raw = np.int64(0)
    for b in range(w_sum.size):
        # Unsigned bounds: numba then emits no negative-index fix-up, which would stop the loops vectorising.
        lo = uint64(b * BLOCK)
        hi = uint64(min(b * BLOCK + BLOCK, x.size))
        s = np.int64(0)
        if want_raw and not same:
            for i in range(lo, hi):
                v = x[i]
                w[i] = exp_one(v, shift, factor)
                scratch[i] = exp_one(v, rs, raw_factor)
            r = np.int64(0)
            for i in range(lo, hi):
                s += fixed(w[i])
                r += fixed(scratch[i])
            raw += r
        else:
            for i in range(lo, hi):
                w[i] = exp_one(x[i], shift, factor)
            for i in range(lo, hi):
                s += fixed(w[i])
            if same:
                raw += s
        w_sum[b] = s
        w_max[b] = weight_bound(keys[b], shift, factor)
        total += s
    return total, raw


@njit(cache=True, nogil=True)
def describe(w, w_sum, w_max):
    """Fill the weight rows for weights computed elsewhere; returns their fixed() total."""
    wide_vectors()
    total = np.int64(0)
    bits = w.view(np.int32)
    for b in range(w_sum.size):
        s = np.int64(0)
        m = np.int32(0)
        for i in range(uint64(b * BLOCK), uint64(min(b * BLOCK + BLOCK, w.size))):
            s += fixed(w[i])
            m = max(m, bits[i])
        w_sum[b] = s
        w_max[b] = m
        total += s
    return total


@njit(cache=True, nogil=True)
def set_weight(w, j, value, w_sum, w_max):
    """w[j] = value, keeping its block's sum exact and its max bits an upper bound; returns the change of
    the fixed() total."""
    delta = fixed(value) - fixed(w[j])
    w[j] = value
    b = j // BLOCK
    w_sum[b] += delta
    w_max[b] = max(w_max[b], float_to_int_bits(value))
    return delta
