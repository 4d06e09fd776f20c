"""log_softmax of raw logits and the top-k logprobs, read before any bias or penalty (SPEC.md order)."""
import math

import numpy as np
from numba import njit

from .fastexp import exp_scaled
from .select import max_value
from .topk import top_k


@njit(cache=True, nogil=True)
def log_normalizer(logits, exp_out):
    """log(sum(exp(logits))) computed stably; uses exp_out as scratch."""
    m = max_value(logits)
    if m == -np.inf:
        return -np.inf
    return m + math.log(exp_scaled(logits, m, 1.0, exp_out))


@njit(cache=True, nogil=True)
def log_softmax(logits, out):
    """out[i] = logits[i] - logsumexp(logits) (float32)."""
    log_z = log_normalizer(logits, out)
    for i in range(logits.size):
        out[i] = logits[i] - log_z
    return log_z


@njit(cache=True, nogil=True)
def top_logprobs(logits, log_z, k, out_ids, out_logprobs):
    """The k most likely tokens of the raw distribution: ids into out_ids[:k], logprobs (float64, like the
    sampled token's) into out_logprobs[:k]."""
    k = top_k(logits, k, out_ids)
    for i in range(k):
        out_logprobs[i] = logits[out_ids[i]] - log_z
    return k
