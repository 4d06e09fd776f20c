"""Each kernel on tiny vectors whose answers are worked out by hand."""
import math

import numpy as np
import pytest

import kernels
from kernels import reference as ref

from .helpers import step


def test_logit_bias_is_sparse_addition():
    x = np.array([1.0, 2.0, 3.0, 4.0], np.float32)
    kernels.apply_logit_bias(x, np.array([0, 3], np.int32), np.array([10.0, -100.0], np.float32))
    assert x.tolist() == [11.0, 2.0, 3.0, -96.0]


def test_penalties_follow_the_spec_formula():
    x = np.zeros(4, np.float32)
    counts = np.array([0, 3, 1, 0], np.int32)
    occurred = np.array([2, 1, 0, 0], np.int32)
    kernels.apply_penalties(x, counts, occurred, 2, 0.5, 0.25)
    # logit[j] -= c[j]*frequency + (c[j] > 0)*presence
    assert x.tolist() == [0.0, -(3 * 0.5 + 0.25), -(1 * 0.5 + 0.25), 0.0]


def test_record_token_counts_and_lists_first_occurrences():
    counts = np.zeros(5, np.int32)
    occurred = np.zeros(5, np.int32)
    n = 0
    for t in (3, 1, 3, 3):
        n = kernels.record_token(t, counts, occurred, n)
    assert n == 2 and occurred[:2].tolist() == [3, 1] and counts.tolist() == [0, 1, 0, 3, 0]


def test_argmax_first_of_ties_and_inf():
    assert kernels.argmax(np.array([1.0, 5.0, 5.0, -np.inf], np.float32)) == 1
    assert kernels.argmax(np.array([-np.inf, -np.inf, -3.0], np.float32)) == 2
    assert kernels.max_value(np.array([-np.inf, -2.5, -7.0], np.float32)) == -2.5
    assert kernels.max_value(np.array([-0.0, -1e-45], np.float32)) == 0.0


def test_top_k_orders_by_value_then_id():
    ids = np.zeros(5, np.int32)
    k = kernels.top_k(np.array([0.5, 2.0, 1.0, 2.0, -np.inf, 1.0], np.float32), 4, ids)
    assert k == 4 and ids[:4].tolist() == [1, 3, 2, 5]
    assert kernels.top_k(np.array([1.0], np.float32), 0, ids) == 0


def test_log_softmax_of_known_probabilities():
    p = np.array([0.3, 0.1, 0.1, 0.5])
    out = np.empty(4, np.float32)
    kernels.log_softmax(np.log(p).astype(np.float32) + 7.0, out)
    np.testing.assert_allclose(out, np.log(p), atol=1e-6)


@pytest.mark.parametrize("top_p, nucleus", [
    (0.5, [3]),          # 0.5 alone reaches 0.5
    (0.8, [0, 3]),       # 0.5 + 0.3
    (0.85, [0, 1, 3]),   # 0.9 needs one 0.1: the tie goes to the lower id
    (0.95, [0, 1, 2, 3]),
    (1e-9, [3]),         # very small top_p: the single most likely token
])
def test_top_p_nucleus_on_hand_vector(top_p, nucleus):
    raw = np.log([0.3, 0.1, 0.1, 0.5]).astype(np.float32)
    ws = kernels.Workspace(4)
    total = kernels.exp_scaled(raw, kernels.max_value(raw), 1.0, ws.weights)
    w_b, i_b, mass = kernels.nucleus_boundary(ws.weights, total, top_p, ws.ids_scratch, ws.blocks)
    members = [i for i in range(4) if ws.weights[i] > w_b or (ws.weights[i] == w_b and i <= i_b)]
    assert members == nucleus
    assert mass / total == pytest.approx(sum([0.3, 0.1, 0.1, 0.5][i] for i in nucleus), rel=1e-6)
    assert ref.nucleus_mask(np.array([0.3, 0.1, 0.1, 0.5]) / 0.5, top_p).nonzero()[0].tolist() == nucleus


def test_draw_is_inverse_cdf_in_id_order():
    w = np.array([0.2, 0.0, 0.3, 0.5], np.float32)
    assert kernels.draw_all(w, 1.0, 0.0) == 0
    assert kernels.draw_all(w, 1.0, 0.19) == 0
    assert kernels.draw_all(w, 1.0, 0.21) == 2
    assert kernels.draw_all(w, 1.0, 0.51) == 3
    assert kernels.draw_all(w, 1.0, 0.999999) == 3


def test_temperature_zero_is_argmax_after_bias_and_penalties():
    raw = [1.0, 3.0, 2.0]
    assert step(raw, temperature=0.0)[0] == 1
    assert step(raw, temperature=0.0, bias={2: 1.5})[0] == 2
    assert step(raw, temperature=0.0, counts=[0, 1, 0], frequency=1.5)[0] == 2
    assert step(raw, temperature=0.0, counts=[0, 1, 0], presence=0.5, frequency=0.4)[0] == 1  # 3 - 0.9 = 2.1 > 2
    assert step(raw, temperature=0.0, counts=[0, 1, 0], presence=0.7, frequency=0.4)[0] == 2  # 1.9 < 2


def test_bias_plus_100_forces_and_minus_100_bans():
    raw = np.zeros(50, np.float32)
    for seed in range(20):
        assert step(raw, bias={17: 100.0}, seed=seed)[0] == 17
        assert step(raw, bias={i: -100.0 for i in range(49)}, seed=seed)[0] == 49


def test_logprobs_are_raw_before_bias():
    raw = np.log([0.3, 0.1, 0.1, 0.5]).astype(np.float32)
    token, lp, ids, lps, _ = step(raw, bias={1: 100.0}, n_top=2)
    assert token == 1
    assert lp == pytest.approx(math.log(0.1), abs=1e-6)
    assert ids == [3, 0]
    np.testing.assert_allclose(lps, np.log([0.5, 0.3]), atol=1e-6)


def test_rng_known_values_and_range():
    u = kernels.uniform(kernels.seed_to_u64(0), 0, 0)
    assert u == ref.uniform(0, 0, 0)
    assert 0.0 <= u < 1.0
    assert kernels.splitmix64(np.uint64(0)) == np.uint64(0xE220A8397B1DCDAF)  # SplitMix64's published first output
    assert kernels.uniform(kernels.seed_to_u64(-1), 3, 5) == ref.uniform(-1, 3, 5)


@pytest.mark.parametrize("temperature", [5e-324, 1e-39, 1e-31])
def test_vanishing_temperature_is_the_argmax(temperature):
    raw = np.array([0.5, 2.0, 1.0, -np.inf], np.float32)
    for top_p in (1.0, 0.5):
        assert step(raw, temperature=temperature, top_p=top_p, seed=3)[0] == 1


@pytest.mark.parametrize("small, drawable", [
    (0.9 * 2.0 ** -40, False),  # below one unit of the fixed-point masses: never drawn
    (4 * 2.0 ** -40, True),     # four units: drawn, at the very end of the range of u
])
def test_weights_below_2_to_the_minus_40_of_the_largest_are_never_drawn(small, drawable):
    """README, "Choices written down": masses are fixed point in units of 2**-40 of the most likely token's weight,
    so a token below one unit is never drawn. The draw (draw_all_in_blocks, which the fused step uses at
    top_p = 1; a nucleus never needs such a token's mass) inverts the CDF in id order, so the extreme values of
    u, 0 and the RNG's largest 1 - 2**-53, are the only ones that could pick a token at either end of the row."""
    u_max = 1.0 - 2.0 ** -53
    for weights, u, small_id in (([1.0, small], u_max, 1), ([small, 1.0], 0.0, 0), ([small, 1.0, small], u_max, 2)):
        w = np.array(weights, np.float32)
        total = float(np.floor(w.astype(np.float64) * 2.0 ** 40).sum()) * 2.0 ** -40  # as exp_scaled returns it
        assert (kernels.draw_all(w, total, u) == small_id) == drawable
        if u == u_max:  # exact arithmetic would draw it: the cutoff is the fixed point's doing
            assert ref.draw(w.astype(np.float64), w > 0, u) == small_id
