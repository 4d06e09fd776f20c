"""Numba kernels agree with their NumPy twins (kernels/reference.py) on seeded random inputs."""
import numpy as np
import pytest

import kernels
from kernels import reference as ref

from .helpers import JIT_DISABLED, step

SIZES = [8, 49_152] if JIT_DISABLED else [8, 49_152, 262_144]


def _logits(kind, v, rng):
    if kind == "normal":
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


KINDS = ["normal", "neg_inf", "ties", "flat", "dominant", "zipf"]
SETTINGS = [
    dict(temperature=1.0, top_p=1.0),
    dict(temperature=0.8, top_p=0.95),
    dict(temperature=1.3, top_p=0.5),
    dict(temperature=0.7, top_p=1e-6),
    dict(temperature=0.0, top_p=1.0),
]


@pytest.mark.parametrize("v", SIZES)
@pytest.mark.parametrize("kind", KINDS)
def test_sample_step_matches_twin(v, kind):
    rng = np.random.default_rng(v + KINDS.index(kind))
    raw = _logits(kind, v, rng)
    ws = kernels.Workspace(v)
    counts = np.zeros(v, np.int32)
    counts[rng.integers(0, v, 5)] = rng.integers(1, 4, 5)
    bias = {int(i): float(b) for i, b in zip(rng.integers(0, v, 3), rng.uniform(-5, 5, 3))}
    exact = total = 0
    draws = 3 if JIT_DISABLED and v > 8 else 40  # interpreted, a 49,152-token step takes ~1.5 s
    for s, setting in enumerate(SETTINGS):
        for d in range(draws):
            kw = dict(bias=bias, counts=counts, frequency=0.4, presence=0.3, seed=1234 + d, step=s, **setting)
            token, lp, ids, lps, _ = step(raw, ws=ws, n_top=5, **kw)
            r_token, r_lp, r_ids, r_lps = ref.sample_step(
                raw, list(bias), list(bias.values()), counts, 0.4, 0.3, setting["temperature"],
                setting["top_p"], 1234 + d, 0, s, 5)
            total += 1
            exact += token == r_token
            if token != r_token:
                _assert_within_rounding_of_cdf_step(raw, bias, counts, setting, 1234 + d, s, token)
            assert ids == r_ids.tolist()
            np.testing.assert_allclose(lps, r_lps, atol=2e-5)
            assert lp == pytest.approx(r_lp if token == r_token else ref.log_softmax(raw)[token], abs=2e-5)
    # The kernel's weights are float32 (relative error ~3e-7); the twin's are float64. A draw may differ
    # only when u lands within that rounding of a CDF step, which the helper checks; most draws agree exactly.
    assert exact >= 0.9 * total


def _assert_within_rounding_of_cdf_step(raw, bias, counts, setting, seed, step_, token):
    p = ref.target_distribution(raw, list(bias), list(bias.values()), counts, 0.4, 0.3,
                                setting["temperature"], setting["top_p"])
    assert p[token] > 0, "drew a token outside the nucleus"
    cdf = np.cumsum(p)
    goal = ref.uniform(seed, 0, step_)
    lo = cdf[token - 1] if token else 0.0
    # The kernel's total (float32 sums over blocks of 1024) is within 1024 * 2**-24 = 6.1e-5 of the exact one
    # (relative), which moves its nucleus and CDF by at most that much.
    assert lo - 1e-4 <= goal <= cdf[token] + 1e-4


@pytest.mark.parametrize("v", SIZES)
def test_log_softmax_and_top_k_match_twin(v):
    rng = np.random.default_rng(7)
    raw = _logits("neg_inf", v, rng)
    out = np.empty(v, np.float32)
    kernels.log_softmax(raw, out)
    expected = ref.log_softmax(raw)
    finite = np.isfinite(expected)
    np.testing.assert_allclose(out[finite], expected[finite], atol=2e-5)
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
    # Selection logic on identical weights and total: exact agreement (exp accuracy and the total's
    # float32-block rounding, ~1e-7 relative, are tested on their own).
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
    assert total == pytest.approx(expected.sum(), rel=1e-6)
