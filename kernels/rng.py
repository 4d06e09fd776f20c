"""Counter-based RNG: the uniform draw for (seed, choice, step) is a pure function of those three numbers.

SplitMix64's finaliser chained over the key: no state to carry, so a choice's draws do not depend on
what else is in the batch, on thread order, or on how many other choices the request has.
"""
import numpy as np
from numba import njit

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S30, _S27, _S31, _S11 = np.uint64(30), np.uint64(27), np.uint64(31), np.uint64(11)
_TWO_POW_M53 = 1.0 / 9007199254740992.0


@njit(cache=True, nogil=True)
def splitmix64(x):
    """One SplitMix64 output for input word x (uint64); pure."""
    z = x + _GOLDEN
    z = (z ^ (z >> _S30)) * _M1
    z = (z ^ (z >> _S27)) * _M2
    return z ^ (z >> _S31)


@njit(cache=True, nogil=True)
def uniform(seed, choice, step):
    """A float64 in [0, 1) keyed by (seed: uint64, choice: int, step: int); pure."""
    h = splitmix64(seed)
    h = splitmix64(h ^ np.uint64(choice))
    h = splitmix64(h ^ np.uint64(step))
    return np.float64(h >> _S11) * _TWO_POW_M53


def seed_to_u64(seed: int) -> np.uint64:
    """Map any int64 seed (negative ones included) to the uint64 key the kernels take."""
    return np.uint64(seed & 0xFFFFFFFFFFFFFFFF)
