"""A per-row logits constraint (structured output): keep the allowed tokens of a packed bitmask, the rest -inf.

The bitmask is what grammar engines produce (xgrammar, llguidance): ceil(n_vocab / 32) int32 words, bit
(t % 32) of word t // 32 set when token t is allowed. Applied before the sampling kernels (kernels/step.py), so
every stage after it (bias, penalties, temperature, top_p, the draw) sees only allowed tokens.
"""
import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def mask_logits(row, bitmask, out):
    """out[t] = row[t] where token t is allowed, -inf elsewhere (tokens past the mask's words are not allowed).
    Returns how many tokens are allowed."""
    n = row.size
    allowed = 0
    neg_inf = np.float32(-np.inf)
    for t in range(n):
        w = t >> 5
        if w < bitmask.size and (bitmask[w] >> (t & 31)) & 1:
            out[t] = row[t]
            allowed += 1
        else:
            out[t] = neg_inf
    return allowed
