"""FLOPs by hand: 6N + attention terms, Narayanan's Eq. 3, per-op sums, TP splits."""
import pytest
from hypothesis import given
from hypothesis import strategies as st

from simulator.config.workload import ModelConfig
from simulator.model.arch import resolve
from simulator.model.flops import model_flops_per_token, recompute_flops_per_token
from simulator.model.ops import Shard, fwd_flops, layer_ops

GPT = dict(num_layers=24, hidden_size=2304, num_attention_heads=24, vocab_size=51200, seq_length=2048)


def test_llama3_8b_flops_per_token_by_hand(scenario):
    a = resolve(scenario("llama3-8b").workload.model)
    h, f, kv, V, L, s = 4096, 14336, 1024, 128256, 32, 8192
    n_matmul = L * (h * (h + 2 * kv) + h * h + 3 * h * f) + V * h      # output projection counts
    assert model_flops_per_token(a) == 6 * n_matmul + 12 * L * s * h


def test_narayanan_eq3_is_model_plus_full_recompute():
    a = resolve(ModelConfig(**GPT))
    B, s, l, h, V = 512, 2048, 24, 2304, 51200
    per_step = (model_flops_per_token(a) + recompute_flops_per_token(a, "full")) * B * s
    assert per_step == pytest.approx(96 * B * s * l * h * h * (1 + s / (6 * h) + V / (16 * l * h)), rel=1e-12)


def test_selective_recompute_adds_only_attention():
    a = resolve(ModelConfig(**GPT))
    assert recompute_flops_per_token(a, "selective") == 4 * 24 * 2048 * 2304
    assert recompute_flops_per_token(a, "none") == 0


def test_moe_counts_topk_experts_only(scenario):
    a = resolve(scenario("mixtral-8x7b").workload.model)
    h, f, kv, V, L, s, E = 4096, 14336, 1024, 32000, 32, 4096, 8
    per_layer = h * (h + 2 * kv) + h * h + 2 * 3 * h * f + h * E
    assert model_flops_per_token(a) == 6 * (L * per_layer + V * h) + 12 * L * s * h


def _shard(tp=1, b=1, flash=True, sp=False):
    return Shard(micro_batch=b, tp=tp, cp=1, ep=1, sequence_parallel=sp, flash_attention=flash)


def test_layer_ops_sum_to_matmul_plus_causal_attention():
    a = resolve(ModelConfig(**GPT))
    T, h, s = 2048, 2304, 2048
    weights = 12 * h * h
    # flash: the causal half, plus the masked half of the 16 diagonal 128 x 128 blocks it runs whole
    assert fwd_flops(layer_ops(a, _shard())) == pytest.approx(2 * T * weights + 2 * s * s * h * (1 + 1 / 16),
                                                              rel=1e-12)
    # the unfused path computes the full (uncausal) score matrix
    assert fwd_flops(layer_ops(a, _shard(flash=False))) == pytest.approx(2 * T * weights + 4 * s * s * h, rel=1e-12)


@given(tp=st.sampled_from([1, 2, 4, 8]), b=st.integers(1, 4), flash=st.booleans())
def test_tensor_parallelism_splits_flops_evenly(tp, b, flash):
    a = resolve(ModelConfig(num_layers=2, hidden_size=4096, ffn_hidden_size=14336, num_attention_heads=32,
                            num_query_groups=8, vocab_size=32000, seq_length=4096, activation="swiglu"))
    full = fwd_flops(layer_ops(a, _shard(1, b, flash)))
    assert fwd_flops(layer_ops(a, _shard(tp, b, flash))) * tp == pytest.approx(full, rel=1e-12)
