"""Draw frequencies match the target distribution; nothing outside the nucleus is ever drawn.

Seeds are fixed, so each test is deterministic; the bounds are what a correct sampler meets with
overwhelming probability (chi-square at about six standard deviations, total variation within 1.3x
of its expectation)."""
import math

import numpy as np
import pytest

import kernels
from kernels import reference as ref

from .helpers import JIT_DISABLED, dense_condition, touch_top

N_DRAWS = 100_000
EMPTY_I, EMPTY_F = np.zeros(0, np.int32), np.zeros(0, np.float32)

SETTINGS = {
    "plain softmax": dict(v=16, temperature=1.0, top_p=1.0, bias={}, counts={}),
    "temperature, top_p, bias, penalties": dict(v=16, temperature=0.7, top_p=0.8, bias={3: 1.5, 9: -2.0},
                                                counts={0: 2, 5: 1}),
    "hot zipf, wide nucleus": dict(v=1000, temperature=1.5, top_p=0.95, bias={10: 3.0}, counts={1: 4}),
}
# Every one of the 10 largest raw logits biased or penalised: kernels/step.py's dense fallback.
for _t in (0.8, 1.3):
    for _p in (1.0, 0.95, 0.5):
        SETTINGS[f"top 10 touched, T={_t}, top_p={_p}"] = dict(v=1000, temperature=_t, top_p=_p, touch_top=True)


def _draws(raw, s, bias, counts):
    v = raw.size
    ws = kernels.Workspace(v)
    bias_ids = np.array(list(bias), np.int32) if bias else EMPTY_I
    bias_vals = np.array(list(bias.values()), np.float32) if bias else EMPTY_F
    occurred = np.zeros(v, np.int32)
    nz = np.flatnonzero(counts)
    occurred[: nz.size] = nz
    top_ids, top_lps = np.zeros(1, np.int32), np.zeros(1, np.float64)
    seed = kernels.seed_to_u64(20261126)
    hits = np.zeros(v, np.int64)
    for i in range(N_DRAWS):
        c = counts.copy()  # the step records its token; keep the penalty state fixed across draws
        token, _, _ = kernels.sample_token(raw, ws, key=seed, step=i, temperature=s["temperature"],
                                           top_p=s["top_p"], bias_ids=bias_ids, bias_values=bias_vals, counts=c,
                                           occurred=occurred.copy(), n_occurred=nz.size, frequency=0.6,
                                           presence=0.4)
        hits[token] += 1
    return hits


@pytest.mark.skipif(JIT_DISABLED, reason="100,000 interpreted draws take minutes without the JIT")
@pytest.mark.parametrize("name", list(SETTINGS))
def test_empirical_distribution_matches_target(name):
    s = SETTINGS[name]
    rng = np.random.default_rng(5)
    v = s["v"]
    raw = (-1.1 * np.log1p(rng.permutation(v)) if v > 100 else rng.standard_normal(v) * 1.5).astype(np.float32)
    if s.get("touch_top"):
        bias, counts = touch_top(raw, rng)
        assert dense_condition(raw, bias, counts, n_top=-1)
    else:
        bias = s["bias"]
        counts = np.zeros(v, np.int32)
        for t, c in s["counts"].items():
            counts[t] = c
    hits = _draws(raw, s, bias, counts)
    p = ref.target_distribution(raw, list(bias), list(bias.values()), counts, 0.6, 0.4,
                                s["temperature"], s["top_p"])
    assert hits[p == 0].sum() == 0, "drew a token outside the nucleus"
    support = p > 0
    expected = p[support] * N_DRAWS
    chi2 = float(((hits[support] - expected) ** 2 / expected).sum())
    df = int(support.sum()) - 1
    assert chi2 < df + 6 * math.sqrt(2 * df), (chi2, df)
    # Total variation: a correct sampler's expected TV is ~ 0.5 * sum sqrt(2 p (1 - p) / (pi n)).
    tv = 0.5 * np.abs(hits / N_DRAWS - p).sum()
    expected_tv = 0.5 * np.sqrt(2 * p * (1 - p) / (math.pi * N_DRAWS)).sum()
    assert tv < 1.3 * expected_tv + 1e-3, (tv, expected_tv)
