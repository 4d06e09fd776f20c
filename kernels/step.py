"""The fused per-token, per-choice sampling step. Stage order (SPEC.md), each skipped when unused:

1. raw logprobs: log-normaliser of the raw logits and the top-k ids/logprobs   (n_top >= 0)
2. + logit_bias (sparse)                                                     (bias_ids non-empty)
3. - frequency/presence penalties over the tokens generated so far          (counts non-empty)
4. temperature == 0 (or below 1e-30): argmax;  else: weights = exp((x - max) / temperature)
5. top_p < 1: cut to the nucleus
6. seeded draw u = uniform(seed, choice, step), inverse CDF in id order
7. record the token in counts (penalties only)

How it stays fast: one pass records each block's largest raw logit, so top-k and the maximum read only the
blocks that can matter. Bias and penalties are written only at the tokens they touch (into `work`); one
pass computes the weights of the raw row (and, in the same pass, the raw log-normaliser), which are then
corrected at the touched tokens. The nucleus and the draw skip blocks on per-block sums and bounds. When the
largest untouched logit is not among the raw top _TOP_FOR_MAX, or for greedy, the adjusted row is written
out in full instead.
"""
import math

import numpy as np
from numba import njit

from .blocks import block_maxima, rows, set_weight, weigh, weight_floor
from .fastexp import FIXED_UNIT, exp_factor, exp_one
from .logit_adjust import apply_logit_bias, apply_penalties, record_token
from .logprobs import log_normalizer
from .nucleus import draw_all_in_blocks, draw_nucleus_in_blocks, nucleus_in_blocks
from .rng import uniform
from .select import key_to_float
from .topk import argmax_in_blocks, top_k_in_blocks

_MIN_TEMPERATURE = 1e-30
_TOP_FOR_MAX = 8  # raw top tokens searched for the largest logit that no bias or penalty touched


@njit(cache=True, nogil=True)
def _touched(t, bias_ids, counts, n_occurred):
    if n_occurred > 0 and counts[t] > 0:
        return True
    for i in range(bias_ids.size):
        if bias_ids[i] == t:
            return True
    return False


@njit(cache=True, nogil=True)
def _adjust_touched(raw, work, bias_ids, bias_values, counts, occurred, n_occurred, frequency, presence):
    """work[j] = raw[j] + bias - penalties at every touched token j (work is left alone elsewhere);
    returns their maximum (-inf when none)."""
    for i in range(bias_ids.size):
        work[bias_ids[i]] = raw[bias_ids[i]]
    for i in range(n_occurred):
        work[occurred[i]] = raw[occurred[i]]
    apply_logit_bias(work, bias_ids, bias_values)
    if n_occurred > 0:
        apply_penalties(work, counts, occurred, n_occurred, frequency, presence)
    m = np.float32(-np.inf)
    for i in range(bias_ids.size):
        m = max(m, work[bias_ids[i]])
    for i in range(n_occurred):
        m = max(m, work[occurred[i]])
    return m


@njit(cache=True, nogil=True)
def _draw(weights, w_sum, w_max, w_low, total, top_p, seed, choice, step, ids_scratch):
    u = uniform(seed, choice, step)
    if top_p >= 1.0:
        return draw_all_in_blocks(weights, w_sum, total, u)
    w_b, i_b, mass = nucleus_in_blocks(weights, w_max, w_low, total, top_p, ids_scratch)
    return draw_nucleus_in_blocks(weights, w_max, w_b, i_b, mass, u)


@njit(cache=True, nogil=True)
def _choose_dense(x, keys, temperature, top_p, seed, choice, step, weights, w_sum, w_max, ids_scratch):
    """Stages 4-6 on a fully written row x (keys: scratch for its block maxima)."""
    best, worst = block_maxima(x, keys)
    shift = key_to_float(np.int32(best))
    if temperature < _MIN_TEMPERATURE or shift == -np.inf:
        return argmax_in_blocks(x, keys, best)  # 1/T would overflow float32: the T -> 0 limit, the argmax
    factor = exp_factor(1.0 / temperature)
    total, _ = weigh(x, keys, shift, factor, np.nan, weights, weights, w_sum, w_max)
    w_low = weight_floor(worst, shift, factor)
    return _draw(weights, w_sum, w_max, w_low, total, top_p, seed, choice, step, ids_scratch)


@njit(cache=True, nogil=True)
def sample_step(raw, work, weights, ids_scratch, blocks,
                bias_ids, bias_values, counts, occurred, n_occurred, frequency, presence,
                temperature, top_p, seed, choice, step, n_top, top_ids, top_lps):
    """Sample one token from the raw logits row `raw` (float32, may be read-only; never written).

    Scratch (overwritten): work, weights (float32, vocab-sized), ids_scratch (int32, vocab-sized), blocks
    (int64, blocks.blocks_size). When n_top >= 0, top_ids[:n_top] and top_lps[:n_top] (float64) receive the
    raw top-k. When counts is non-empty, counts/occurred are updated with the token. Returns (token, raw
    logprob of the token or NaN when n_top < 0, new n_occurred).
    """
    keys, w_sum, w_max, spare = rows(blocks, raw.size)
    best, worst = block_maxima(raw, keys)
    m_raw = key_to_float(np.int32(best))
    penalize = counts.size > 0
    n_pen = n_occurred if penalize else 0
    adjusted = bias_ids.size > 0 or n_pen > 0
    n_scan = max(n_top, _TOP_FOR_MAX if adjusted else 0)
    k = top_k_in_blocks(raw, keys, n_scan, ids_scratch) if n_scan > 0 else 0
    for r in range(min(max(n_top, 0), k)):
        top_ids[r] = ids_scratch[r]

    shift = m_raw
    sparse = m_raw > -np.inf and temperature >= _MIN_TEMPERATURE
    if adjusted:
        m_adj = _adjust_touched(raw, work, bias_ids, bias_values, counts, occurred, n_pen, frequency, presence)
        found = k == raw.size  # every token examined: no untouched one means the maximum is m_adj
        m_untouched = np.float32(-np.inf)
        for r in range(k):
            if not _touched(ids_scratch[r], bias_ids, counts, n_pen):
                m_untouched = raw[ids_scratch[r]]
                found = True
                break
        shift = max(m_adj, m_untouched)
        sparse = sparse and found and shift > -np.inf

    log_z = np.nan
    if sparse:
        factor = exp_factor(1.0 / temperature)
        total, raw_total = weigh(raw, keys, shift, factor, m_raw if n_top >= 0 else np.nan, weights,
                                 ids_scratch.view(np.float32), w_sum, w_max)
        if n_top >= 0:
            log_z = m_raw + math.log(raw_total * FIXED_UNIT)
        w_low = weight_floor(worst, shift, factor)
        for i in range(bias_ids.size + n_pen):  # idempotent, so a token both biased and penalised is fine
            j = bias_ids[i] if i < bias_ids.size else occurred[i - bias_ids.size]
            v = exp_one(work[j], shift, factor)
            total += set_weight(weights, j, v, w_sum, w_max)
            w_low = min(w_low, v)
        token = _draw(weights, w_sum, w_max, w_low, total, top_p, seed, choice, step, ids_scratch)
    else:
        if n_top >= 0:
            log_z = log_normalizer(raw, weights)
        if adjusted:
            work[:] = raw
            apply_logit_bias(work, bias_ids, bias_values)
            if n_pen > 0:
                apply_penalties(work, counts, occurred, n_pen, frequency, presence)
            token = _choose_dense(work, spare, temperature, top_p, seed, choice, step, weights, w_sum, w_max,
                                  ids_scratch)
        else:  # greedy, or every logit is -inf
            token = argmax_in_blocks(raw, keys, best)

    for r in range(min(max(n_top, 0), k)):
        top_lps[r] = raw[top_ids[r]] - log_z
    if penalize:
        n_occurred = record_token(token, counts, occurred, n_occurred)
    token_logprob = raw[token] - log_z if n_top >= 0 else math.nan
    return token, token_logprob, n_occurred
