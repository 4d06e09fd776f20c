"""A vectorisable float32 exp, and weights summed exactly in fixed point.

libm's expf is a scalar call that stops LLVM vectorising a loop. No fastmath: with it, LLVM chose the
summation order (and FMA contraction) per compilation, and the same kernel gave different last bits freshly
compiled and loaded from numba's cache. Integer sums are exact in any order and still vectorise.
"""
import numpy as np
from numba import njit

from .bits import float_to_int_bits, int_bits_to_float
from .simd import fma32, wide_vectors

LOG2E = np.float32(1.4426950408889634)
# Degree-5 minimax fit of 2**f on |f| <= 0.5 (relative error 7.5e-8 in exact arithmetic, 2.4e-7 in float32):
# as accurate as float32 allows, two multiply-adds cheaper than the Taylor series of the same accuracy.
_C0 = np.float32(1.0000000716542627)
_C1 = np.float32(0.6931469670516319)
_C2 = np.float32(0.2402211972521329)
_C3 = np.float32(0.055507132949347004)
_C4 = np.float32(0.009675541279291629)
_C5 = np.float32(0.001327646506286863)
_FLOOR = np.float32(-127.0)
_ROUNDER = np.float32(12582912.0 + 127.0)  # 1.5 * 2**23, plus the exponent bias
_ZERO = np.float32(0.0)
FIXED_SCALE = np.float32(2.0 ** 40)
FIXED_UNIT = 2.0 ** -40


@njit(cache=True, nogil=True)
def exp_one(x, shift, factor):
    """exp2(min((x - shift) * factor, 0)) in float32 (factor = log2(e) / temperature); exactly 0 below
    ~2**-126.5 and for NaN arguments such as (-inf) - (-inf). The same bits whether vectorised or not."""
    t = (x - np.float32(shift)) * np.float32(factor)
    t = t if t > _FLOOR else _FLOOR  # first, so that NaN becomes the floor (0 below), never 1
    t = t if t < _ZERO else _ZERO  # callers shift by the maximum; clamping keeps any other input in [0, 1]
    # Adding 1.5 * 2**23 rounds t to the nearest integer k, and leaves k + 127 in the low mantissa bits.
    kf = t + _ROUNDER
    f = t - (kf - _ROUNDER)  # |f| <= 0.5
    p = fma32(fma32(fma32(fma32(fma32(f, _C5, _C4), f, _C3), f, _C2), f, _C1), f, _C0)
    # (k + 127) << 23 is 2**k; at k = -127 (t at the floor) its bits are 0, so the result is exactly 0.
    return p * int_bits_to_float(float_to_int_bits(kf) << 23)


@njit(cache=True, nogil=True)
def fixed(w):
    """A weight in [0, ~1] as an int64 count of 2**-40: sums of these are exact, so they are the same in
    any order (float sums are not, and LLVM picks the order per compilation). Exact for w >= 2**-17;
    smaller weights lose < 2**-40 each (< 2.4e-7 in all over 2**18 tokens, against a total >= 1)."""
    return np.int64(w * FIXED_SCALE)


@njit(cache=True, nogil=True)
def exp_factor(scale):
    """The float32 factor exp_one takes for exp(scale * (x - shift))."""
    return np.float32(scale) * LOG2E


@njit(cache=True, nogil=True)
def exp_scaled(x, shift, scale, out):
    """out[i] = exp((x[i] - shift) * scale) for the whole of `x`; returns the sum as float64.

    Meant for shift = max(x) and scale = 1/temperature > 0, so every result lies in [0, 1] (arguments above
    0 are clamped to 0). Results below 2**-125 (and -inf inputs) become exactly 0; relative error <= ~3e-7
    plus the float32 rounding of the argument. The sum is of the fixed() values, times 2**-40.
    """
    wide_vectors()
    factor = exp_factor(scale)
    sh = np.float32(shift)
    total = np.int64(0)
    for i in range(x.size):
        w = exp_one(x[i], sh, factor)
        out[i] = w
        total += fixed(w)
    return total * FIXED_UNIT
