"""The Chinchilla fit (model/scaling.py) and the resized architectures (model/resize.py)."""
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator.model import resize, scaling
from simulator.model.arch import resolve
from simulator.model.params import count


def test_closed_form_optimum_matches_hand_computed_values():
    # By hand: G = (0.34 * 406.4 / (0.28 * 410.7))^(1/0.62) = 1.3447;
    # N_opt = G (C/6)^(0.28/0.62), D_opt = (C/6)^(0.34/0.62) / G with C = 3.8e25 (Llama 3 405B's budget)
    p = scaling.compute_optimal(3.8e25)
    assert scaling.CHINCHILLA.G == pytest.approx(1.3447, rel=1e-4)
    assert p.params == pytest.approx(2.1348e11, rel=0.01)
    assert p.tokens == pytest.approx(2.9667e13, rel=0.01)
    assert 6 * p.params * p.tokens == pytest.approx(3.8e25, rel=1e-9)


def test_loss_by_hand():
    # Chinchilla itself: 70B parameters on 1.4T tokens
    # 406.4 / 70e9^0.34 = 0.0835, 410.7 / 1.4e12^0.28 = 0.1631
    assert scaling.loss(70e9, 1.4e12) == pytest.approx(1.69 + 0.0835 + 0.1631, abs=1e-3)


@pytest.mark.parametrize("compute", [1e21, 5.76e23, 3.8e25, 1e27])
def test_numerical_minimum_on_the_isoflop_agrees_with_the_closed_form(compute):
    closed = scaling.compute_optimal(compute)
    num = scaling.minimise_numerically(compute)
    assert num.params == pytest.approx(closed.params, rel=0.01)
    assert num.tokens == pytest.approx(closed.tokens, rel=0.01)
    # and it is a minimum: moving along C = 6ND in either direction raises the loss
    for f in (0.8, 1.25):
        n = closed.params * f
        assert scaling.loss(n, compute / (6 * n)) > closed.loss


@settings(max_examples=40, deadline=None)
@given(st.floats(min_value=1.75, max_value=3.5))
def test_least_compute_for_a_loss_inverts_the_frontier(target):
    p = scaling.optimal_for_loss(target)
    assert p.loss == pytest.approx(target, rel=1e-9)
    assert scaling.compute_optimal(p.compute).params == pytest.approx(p.params, rel=1e-9)


@settings(max_examples=40, deadline=None)
@given(st.floats(min_value=1e9, max_value=1e12), st.floats(min_value=1e10, max_value=1e14))
def test_tokens_for_loss_inverts_the_loss(n, d):
    assert scaling.tokens_for_loss(n, scaling.loss(n, d)) == pytest.approx(d, rel=1e-6)


def test_too_small_a_model_never_reaches_the_loss():
    floor = scaling.smallest_params_for_loss(2.0)
    assert scaling.tokens_for_loss(floor * 0.99, 2.0) is None
    assert scaling.tokens_for_loss(floor * 1.01, 2.0) is not None
    with pytest.raises(ValueError):
        scaling.compute_for_loss(1.69)


def test_overtrained_llama3_8b_reaches_its_loss_cheaper_with_a_bigger_model(scenario):
    # 8B on 15T tokens (~1,900 tokens/param) is far past the compute-optimal point: the fit reaches
    # the same loss with a larger model on fewer tokens for about half the training compute
    n0, d0 = count(resolve(scenario("llama3-8b").workload.model)).total, 15e12
    opt = scaling.optimal_for_loss(scaling.loss(n0, d0))
    assert opt.params > 2 * n0 and opt.tokens < d0 / 5
    assert opt.compute < 0.6 * 6 * n0 * d0


@pytest.mark.parametrize("name", ["llama3-8b", "llama3-70b", "gpt3-175b"])
@pytest.mark.parametrize("target", [3e9, 30e9, 200e9])
def test_scaled_model_keeps_the_family_and_hits_the_size(scenario, name, target):
    m = scenario(name).workload.model
    a = resolve(m)
    new = resize.scaled_model(m, target)
    b = resolve(new)
    assert count(b).total == pytest.approx(target, rel=0.05)
    assert b.kv_channels == a.kv_channels
    # GQA keeps its KV group count (Llama 3: 8 KV heads at every size); MHA stays MHA
    assert b.query_groups == (b.heads if a.query_groups == a.heads else a.query_groups)
    assert b.ffn / b.hidden == pytest.approx(a.ffn / a.hidden, rel=0.05)
    assert (b.vocab, b.seq, b.gated) == (a.vocab, a.seq, a.gated)
    if target >= 30e9:   # small targets: the vocabulary and the head granularity distort the shape
        assert abs(math.log(b.hidden / b.num_layers / (a.hidden / a.num_layers))) < math.log(1.25)


def test_pruned_llama3_8b_matches_minitron_width_shape(scenario):
    # Llama-3.1-Minitron-4B-Width: hidden 4096 -> 3072, attention heads (32, 8 KV, 128 channels) kept
    m = scenario("llama3-8b").workload.model
    p = resize.pruned_model(m, width=0.75)
    assert (p.hidden_size, p.num_attention_heads, p.num_query_groups, p.num_layers) == (3072, 32, 8, 32)
    assert p.ffn_hidden_size == 10752 and p.kv_channels == 128
    assert 4.5e9 < count(resolve(p)).total < 5.5e9
    half = resize.pruned_model(m, depth=0.5)
    assert half.num_layers == 16 and half.hidden_size == 4096


def test_model_overrides_rebuild_the_model(scenario):
    base = scenario("llama3-8b")
    new = resize.scaled_model(base.workload.model, 25e9, multiple=2)
    assert new.num_query_groups % 2 == 0 and new.num_attention_heads % 2 == 0   # TP2 still divides them
    s = scenario("llama3-8b", *resize.model_overrides(base.workload.model, new))
    assert s.workload.model == new
