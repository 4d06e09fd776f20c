"""The fused per-token, per-choice sampling step. Stage order (SPEC.md), each skipped when unused:

1. raw logprobs: log-normaliser of the raw logits and the top-k ids/logprobs   (n_top >= 0)
2. + logit_bias (sparse)                                                     (bias_ids non-empty)
3. - frequency/presence penalties over the tokens generated so far          (counts non-empty)
4. temperature == 0 (or below 1e-30): argmax;  else: weights = exp((x - max) / temperature)
5. top_p < 1: cut to the nucleus
6. seeded draw u = uniform(seed, choice, step), inverse CDF in id order
7. record the token in counts (penalties only)
"""
import math

import numpy as np
from numba import njit

from .fastexp import exp_scaled
from .logit_adjust import apply_logit_bias, apply_penalties, record_token
from .logprobs import log_normalizer, top_logprobs
from .nucleus import draw_all, draw_in_nucleus, nucleus_boundary
from .rng import uniform
from .select import argmax, max_value


_MIN_TEMPERATURE = 1e-30


@njit(cache=True, nogil=True)
def _choose(x, temperature, top_p, seed, choice, step, weights, ids_scratch, hist):
    # Temperatures so small that 1/T overflows float32 are the T -> 0 limit: the argmax.
    if temperature < _MIN_TEMPERATURE:
        return argmax(x)
    m = max_value(x)
    if m == -np.inf:
        return argmax(x)
    total = exp_scaled(x, m, 1.0 / temperature, weights)
    if not total > 0.0:
        return argmax(x)
    u = uniform(seed, choice, step)
    if top_p >= 1.0:
        return draw_all(weights, total, u)
    w_b, i_b, mass = nucleus_boundary(weights, total, top_p, ids_scratch, hist)
    return draw_in_nucleus(weights, w_b, i_b, mass, u)


@njit(cache=True, nogil=True)
def sample_step(raw, work, weights, ids_scratch, hist,
                bias_ids, bias_values, counts, occurred, n_occurred, frequency, presence,
                temperature, top_p, seed, choice, step, n_top, top_ids, top_lps):
    """Sample one token from the raw logits row `raw` (float32, may be read-only; never written).

    Scratch (vocab-sized, overwritten): work, weights (float32),
    ids_scratch (int32); hist (float64, nucleus.HIST_SIZE). When n_top >= 0, top_ids[:n_top] and
    top_lps[:n_top] (float64) receive the raw top-k. When counts is non-empty, counts/occurred are updated with the
    token. Returns (token, raw logprob of the token or NaN when n_top < 0, new n_occurred).
    """
    log_z = np.nan
    if n_top >= 0:
        log_z = log_normalizer(raw, weights)
        top_logprobs(raw, log_z, n_top, top_ids, top_lps)
    penalize = counts.size > 0
    if bias_ids.size > 0 or (penalize and n_occurred > 0):
        work[:] = raw
        apply_logit_bias(work, bias_ids, bias_values)
        if penalize:
            apply_penalties(work, counts, occurred, n_occurred, frequency, presence)
        token = _choose(work, temperature, top_p, seed, choice, step, weights, ids_scratch, hist)
    else:
        token = _choose(raw, temperature, top_p, seed, choice, step, weights, ids_scratch, hist)
    if penalize:
        n_occurred = record_token(token, counts, occurred, n_occurred)
    token_logprob = raw[token] - log_z if n_top >= 0 else math.nan
    return token, token_logprob, n_occurred
