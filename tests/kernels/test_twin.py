"""Numba kernels agree with their NumPy twins (kernels/reference.py) on seeded random inputs.

How close is close enough follows from how the kernels compute (kernels/fastexp.py, blocks.py, nucleus.py):
- every weight is exp_one of a float32 argument: relative error <= 3e-7 + 1.2e-7 * |log w| against the exact
  exp (the bound test_exp_scaled_accuracy checks);
- weights are summed as integers in units of 2**-40 of the largest weight: each loses < 2**-40 to truncation,
  and the sums are exact, in any order;
- the adjusted logits are the same float32 values in kernel and twin up to the penalty's rounding (the kernel
  subtracts c * frequency + presence computed in float64 and rounds once; the twin rounds the penalty to
  float32 first): that difference is computed exactly, token by token.
So for a mass M = sum w over a set of tokens, the kernel's M is within E = sum (w * rel + 2**-40) of the
twin's, and every cumulative fraction of it (the CDF the draw inverts) within 2 E / (M - E): about 1e-6 on
these rows, where the kernels once needed 1e-4 and 10 % of draws were allowed to differ. A draw may differ
from the twin's only when u falls within that of a CDF step, and the nucleus only when its boundary mass lies
within 2 E of the target. _assert_draw_within_bound checks exactly that; log-normalisers must agree within
E / (M - E) of the raw row.
"""
import numpy as np
import pytest

import kernels
from kernels import reference as ref
from kernels.nucleus import TOP_P_EPS

from .helpers import JIT_DISABLED, dense_condition, path_taken, step, touch_top

SIZES = [8, 49_152] if JIT_DISABLED else [8, 49_152, 262_144]
FIXED_UNIT = 2.0 ** -40
FREQUENCY, PRESENCE = 0.4, 0.3


def _kernel_adjusted(raw, bias, counts):
    """The adjusted float32 row as the kernel computes it (float32 bias, then the penalty in float64, one
    rounding)."""
    x = ref.apply_logit_bias(raw, np.asarray(list(bias), np.int64), list(bias.values()))
    pen = counts * FREQUENCY + (counts > 0) * PRESENCE
    return np.where(counts > 0, (x.astype(np.float64) - pen).astype(np.float32), x)


def _weights_and_errors(x32, temperature, delta_x=None):
    """The twin's float64 weights of the float32 row x32 (largest 1) and a bound of each kernel weight's error
    (exp_one's relative error, a logit difference delta_x between the two rows, truncation to 2**-40)."""
    x = x32.astype(np.float64)
    w = np.exp((x - x.max()) / temperature)
    with np.errstate(divide="ignore"):
        log_w = np.where(w > 0, np.log(np.where(w > 0, w, 1.0)), 0.0)
    rel = 3e-7 + 1.2e-7 * np.abs(log_w)
    if delta_x is not None:
        rel += np.expm1(np.abs(delta_x) / temperature)
    return w, w * rel + FIXED_UNIT * (w > 0)


def _log_z_tolerance(raw):
    """Bound of |kernel log-normaliser - exact| for the raw row (temperature 1, no adjustment)."""
    finite = np.isfinite(raw)
    w, err = _weights_and_errors(raw[finite], 1.0)
    return float(err.sum() / (w.sum() - err.sum())) + 1e-12


def _assert_draw_within_bound(raw, bias, counts, temperature, top_p, seed, step_, token):
    """The kernel drew `token` where the twin drew another: u must lie within the kernels' error bound (see
    the module docstring) of token's CDF interval, for some nucleus the kernel can have chosen."""
    ids, vals = np.asarray(list(bias), np.int64), list(bias.values())
    x_twin = ref.apply_penalties(ref.apply_logit_bias(raw, ids, vals), counts, FREQUENCY, PRESENCE)
    x_kernel = _kernel_adjusted(raw, bias, counts)
    with np.errstate(invalid="ignore"):  # -inf - -inf: both rows hold -inf there, no difference
        delta = np.where(x_kernel == x_twin, 0.0, x_kernel.astype(np.float64) - x_twin)
    w, err = _weights_and_errors(x_twin, temperature, delta)
    u = ref.uniform(seed, 0, step_)
    if top_p >= 1.0:
        nuclei = [w > 0]
    else:  # the kernel's boundary mass is within 2 E of the twin's target: try every such prefix
        order = np.lexsort((np.arange(w.size), -w))
        cum = np.cumsum(w[order])
        target = (top_p - TOP_P_EPS) * w.sum()
        first = int(np.searchsorted(cum, target - 2 * err.sum(), side="left")) + 1
        last = int(np.searchsorted(cum, target + 2 * err.sum(), side="left")) + 1
        nuclei = []
        for n in range(max(first, 1), min(last, w.size) + 1):
            mask = np.zeros(w.size, bool)
            mask[order[:n]] = True
            nuclei.append(mask)
    for mask in nuclei:
        if not mask[token]:
            continue
        mass, e = w[mask].sum(), err[mask].sum()
        tol = 2 * e / (mass - e)
        cdf = np.cumsum(np.where(mask, w, 0.0)) / mass
        lo = cdf[token - 1] if token else 0.0
        if lo - tol <= u <= cdf[token] + tol:
            return
    raise AssertionError(f"drew {token} at u={u!r}, outside the error bound of its CDF step in every nucleus "
                         f"the kernel can have chosen ({len(nuclei)} tried)")


def _compare(raw, bias, counts, temperature, top_p, seed, step_, ws, log_z_tol):
    """One draw with top-5 logprobs against the twin; True when the tokens agree."""
    token, lp, ids, lps, _ = step(raw, ws=ws, bias=bias, counts=counts, frequency=FREQUENCY, presence=PRESENCE,
                                  temperature=temperature, top_p=top_p, seed=seed, step=step_, n_top=5)
    r_token, r_lp, r_ids, r_lps = ref.sample_step(raw, list(bias), list(bias.values()), counts, FREQUENCY,
                                                  PRESENCE, temperature, top_p, seed, 0, step_, 5)
    assert ids == r_ids.tolist()
    exact = ref.log_softmax(raw)
    bound = np.full(6, log_z_tol)
    if JIT_DISABLED:  # interpreted, NumPy keeps np.float32 + float in float32: the log-normaliser and each
        # logprob are rounded to float32 there (half an ulp each), where compiled code keeps float64
        log_z = abs(float(raw[token]) - exact[token])
        bound += 2.0 ** -24 * (log_z + np.abs(np.append(r_lps, exact[token])))
    assert np.all(np.abs(np.append(lps, lp) - np.append(r_lps, exact[token])) <= bound)
    if token != r_token:
        assert temperature > 0, "greedy must be the twin's argmax"
        _assert_draw_within_bound(raw, bias, counts, temperature, top_p, seed, step_, token)
    return token == r_token


def _logits(kind, v, rng):
    if kind in ("normal", "top_touched"):
        x = rng.standard_normal(v) * 3
    elif kind == "neg_inf":
        x = rng.standard_normal(v) * 3
        x[rng.choice(v, max(1, v // 10), replace=False)] = -np.inf
    elif kind == "ties":
        x = rng.integers(0, 4, v).astype(float)
    elif kind == "flat":
        x = np.zeros(v)
    elif kind == "dominant":
        x = rng.standard_normal(v)
        x[rng.integers(v)] = 40.0
    elif kind == "zipf":
        x = -1.1 * np.log1p(rng.permutation(v))
    return x.astype(np.float32)


def _adjustments(kind, raw, rng):
    """(bias, dense counts): a few random tokens, or for "top_touched" the 10 largest raw logits and more."""
    if kind == "top_touched":
        return touch_top(raw, rng)
    v = raw.size
    counts = np.zeros(v, np.int32)
    counts[rng.integers(0, v, 5)] = rng.integers(1, 4, 5)
    bias = {int(i): float(b) for i, b in zip(rng.integers(0, v, 3), rng.uniform(-5, 5, 3))}
    return bias, counts


KINDS = ["normal", "neg_inf", "ties", "flat", "dominant", "zipf", "top_touched"]
SETTINGS = [
    dict(temperature=1.0, top_p=1.0),
    dict(temperature=0.8, top_p=0.95),
    dict(temperature=1.3, top_p=0.5),
    dict(temperature=0.7, top_p=1e-6),
    dict(temperature=0.0, top_p=1.0),
]
# "top_touched" is what reaches kernels/step.py's dense fallback (every raw top-8 token biased or penalised,
# as on repetitive text with a frequency penalty): every temperature/top_p pair that matters there.
TOUCHED_SETTINGS = [dict(temperature=t, top_p=p) for t in (0.8, 1.3) for p in (1.0, 0.95, 0.5)] + [
    dict(temperature=0.0, top_p=1.0)]


@pytest.mark.parametrize("v", SIZES)
@pytest.mark.parametrize("kind", KINDS)
def test_sample_step_matches_twin(v, kind):
    rng = np.random.default_rng(v + KINDS.index(kind))
    raw = _logits(kind, v, rng)
    ws = kernels.Workspace(v)
    bias, counts = _adjustments(kind, raw, rng)
    if kind == "top_touched":
        assert dense_condition(raw, bias, counts) == (v > 8)  # at vocab 8 the top-8 search covers the row
    log_z_tol = _log_z_tolerance(raw)
    draws = 2 if JIT_DISABLED and v > 8 else 40  # interpreted, a 49,152-token step takes ~1.5 s
    settings = TOUCHED_SETTINGS if kind == "top_touched" else SETTINGS
    for s, setting in enumerate(settings):
        for d in range(draws):
            _compare(raw, bias, counts, setting["temperature"], setting["top_p"], 1234 + d, s, ws, log_z_tol)


@pytest.mark.parametrize("v", [1_000, 49_152])
def test_top_touched_rows_take_the_dense_fallback(v):
    """The branch itself, seen from inside: the step's Python body with spies on the calls that tell the
    branches apart (the random adjustments of the other kinds stay on the sparse path)."""
    rng = np.random.default_rng(v)
    raw = _logits("normal", v, rng)
    kw = dict(frequency=FREQUENCY, presence=PRESENCE, seed=3, n_top=5)
    for kind, expected in (("top_touched", "dense"), ("normal", "sparse")):
        bias, counts = _adjustments(kind, raw, rng)
        for t, p in ((0.8, 1.0), (1.3, 0.5)):
            taken, token = path_taken(raw, bias, counts, temperature=t, top_p=p, **kw)
            assert taken == expected
            assert token == step(raw, bias=bias, counts=counts, temperature=t, top_p=p, **kw)[0]


@pytest.mark.parametrize("v", SIZES)
def test_log_softmax_and_top_k_match_twin(v):
    rng = np.random.default_rng(7)
    raw = _logits("neg_inf", v, rng)
    out = np.empty(v, np.float32)
    kernels.log_softmax(raw, out)
    expected = ref.log_softmax(raw)
    finite = np.isfinite(expected)
    # The log-normaliser's bound, plus the final rounding of each float32 logprob (half an ulp, 2**-24 relative).
    np.testing.assert_allclose(out[finite], expected[finite], rtol=2.0 ** -24, atol=_log_z_tolerance(raw))
    assert np.all(out[~finite] == -np.inf)
    ids = np.zeros(5, np.int32)
    kernels.top_k(raw, 5, ids)
    assert ids.tolist() == ref.top_k(raw, 5).tolist()


@pytest.mark.parametrize("v", SIZES)
@pytest.mark.parametrize("top_p", [0.1, 0.5, 0.9, 0.95, 0.999])
@pytest.mark.parametrize("kind", ["normal", "flat", "ties", "zipf"])
def test_nucleus_matches_twin(v, top_p, kind):
    rng = np.random.default_rng(3)
    raw = _logits(kind, v, rng)
    ws = kernels.Workspace(v)
    total = kernels.exp_scaled(raw, kernels.max_value(raw), 1.0, ws.weights)
    w_b, i_b, mass = kernels.nucleus_boundary(ws.weights, total, top_p, ws.ids_scratch, ws.blocks)
    w = ws.weights
    ours = (w > w_b) | ((w == w_b) & (np.arange(v) <= i_b))
    # Selection logic on identical weights: exact agreement. (The kernel's masses are exact sums of the weights
    # truncated to 2**-40, the twin's float64 sums of the weights: together < 2.5e-7 apart here.)
    expected = ref.nucleus_mask(w.astype(np.float64), top_p, total)
    assert ours.sum() == expected.sum()
    assert np.array_equal(ours, expected)
    for u in (0.0, 0.3, 0.77, 0.999999):
        assert kernels.draw_in_nucleus(w, w_b, i_b, mass, u) == ref.draw(w.astype(np.float64), expected, u)
        assert kernels.draw_all(w, total, u) == ref.draw(w.astype(np.float64), w > 0, u)


@pytest.mark.parametrize("v", SIZES)
@pytest.mark.parametrize("temperature", [0.3, 1.0, 2.0])
def test_exp_scaled_accuracy(v, temperature):
    rng = np.random.default_rng(11)
    raw = _logits("neg_inf", v, rng) * 10
    ws = kernels.Workspace(v)
    m = kernels.max_value(raw)
    total = kernels.exp_scaled(raw, m, 1.0 / temperature, ws.weights)
    expected = np.exp((raw.astype(np.float64) - m) / temperature)
    # The float32 argument t = (x - max) / T carries a relative rounding of ~6e-8, so the error in exp(t)
    # grows with |t|: bound it by 3e-7 (polynomial) + 1.2e-7 * |t| (argument), for weights above 1e-37.
    ok = expected > 1e-37
    rel = np.abs(ws.weights[ok] / expected[ok] - 1.0)
    assert np.all(rel <= 3e-7 + 1.2e-7 * np.abs(np.log(expected[ok])))
    assert np.all(ws.weights[expected < 2.0 ** -126] < 2.0 ** -120)
    w, err = _weights_and_errors(raw, temperature)
    assert abs(total - w.sum()) <= err.sum()
