"""Sparse logit adjustments: logit_bias and frequency/presence penalties touch only the tokens named."""
from numba import njit


@njit(cache=True, nogil=True)
def apply_logit_bias(logits, bias_ids, bias_values):
    """In place: logits[bias_ids[i]] += bias_values[i]."""
    for i in range(bias_ids.size):
        logits[bias_ids[i]] += bias_values[i]


@njit(cache=True, nogil=True)
def apply_penalties(logits, counts, occurred, n_occurred, frequency, presence):
    """In place, for the n_occurred distinct tokens in occurred[:n_occurred]:
    logits[j] -= counts[j] * frequency + presence   (SPEC.md: c[j] > 0 for exactly those tokens)."""
    for i in range(n_occurred):
        j = occurred[i]
        logits[j] -= counts[j] * frequency + presence


@njit(cache=True, nogil=True)
def record_token(token, counts, occurred, n_occurred):
    """Count one generated token: counts[token] += 1, appending it to occurred on first sight.
    Returns the new n_occurred."""
    if counts[token] == 0:
        occurred[n_occurred] = token
        n_occurred += 1
    counts[token] += 1
    return n_occurred
