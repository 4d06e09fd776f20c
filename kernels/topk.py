"""Top-k and argmax of raw logits from their block maxima: only blocks that can hold a winner are read."""
import numpy as np
from numba import njit

from .blocks import BLOCK, block_maxima, n_blocks
from .select import order_key

_MIN_KEY = np.int64(-2147483648)


@njit(cache=True, nogil=True)
def _kth_largest(keys, k):
    """The k-th largest of keys (k <= keys.size): k distinct blocks hold a value at least this large, so
    it is a floor for the k-th largest logit."""
    best = np.full(k, _MIN_KEY, np.int64)
    for b in range(keys.size):
        v = keys[b]
        if v <= best[k - 1]:
            continue
        pos = k - 1
        while pos > 0 and v > best[pos - 1]:
            best[pos] = best[pos - 1]
            pos -= 1
        best[pos] = v
    return best[k - 1]


@njit(cache=True, nogil=True)
def top_k_in_blocks(x, keys, k, out_ids):
    """Write the ids of the k largest values of x into out_ids[:k], largest first, ties by lowest id;
    keys from block_maxima(x). Returns k (clipped to x.size)."""
    k = min(k, x.size)
    if k <= 0:
        return 0
    floor = _kth_largest(keys, k) if k <= keys.size else _MIN_KEY
    vals = np.full(k, -np.inf, dtype=np.float64)
    bits = x.view(np.int32)
    filled = 0
    kth_key = _MIN_KEY
    for b in range(keys.size):
        if keys[b] < floor or (filled == k and keys[b] <= kth_key):
            continue  # later blocks lose ties (higher ids), so an equal maximum cannot enter either
        for i in range(b * BLOCK, min((b + 1) * BLOCK, x.size)):
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


@njit(cache=True, nogil=True)
def argmax_in_blocks(x, keys, best_key):
    """Lowest id holding the maximum (best_key = max of keys); 0 for an empty x."""
    bits = x.view(np.int32)
    for b in range(keys.size):
        if keys[b] == best_key:
            for i in range(b * BLOCK, min((b + 1) * BLOCK, x.size)):
                if order_key(bits[i]) == best_key:
                    return i
    return 0


@njit(cache=True, nogil=True)
def top_k(x, k, out_ids):
    """Write the ids of the k largest values of x into out_ids[:k], largest first, ties by lowest id; pure
    in x. Returns k (clipped to x.size)."""
    keys = np.empty(n_blocks(x.size), np.int64)
    block_maxima(x, keys)
    return top_k_in_blocks(x, keys, k, out_ids)
