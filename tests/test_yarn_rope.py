"""YaRN RoPE: Megatron-Core's attention factor, and its unfused RoPE when the factor is not 1, by hand."""
import math

import pytest

from simulator.config.workload import ModelConfig
from simulator.model.arch import resolve, yarn_concentration
from simulator.model.ops import Shard, layer_ops, qkv_ops


def _model(**kw) -> ModelConfig:
    # GPT-OSS's attention shapes: 64 query heads and 8 KV groups of 64 channels
    return ModelConfig.model_validate(dict(
        num_layers=2, hidden_size=2880, num_attention_heads=64, num_query_groups=8, kv_channels=64,
        vocab_size=1000, seq_length=4096, activation="swiglu", position_embedding_type="rope", **kw))


def test_concentration_is_megatrons():
    # exponents unset (GPT-OSS): 0.1 ln(32) + 1
    assert yarn_concentration(32.0, None, None) == pytest.approx(1.0 + 0.1 * math.log(32.0))
    assert yarn_concentration(32.0, None, None) == pytest.approx(1.3466, abs=1e-4)
    # DeepSeek-V3's mscale = mscale_all_dim = 1: the factors cancel
    assert yarn_concentration(40.0, 1.0, 1.0) == 1.0
    # mscale 1 over mscale_all_dim 0: (0.1 ln 40 + 1) / 1; no scaling below factor 1
    assert yarn_concentration(40.0, 1.0, 0.0) == pytest.approx(1.0 + 0.1 * math.log(40.0))
    assert yarn_concentration(1.0, None, None) == 1.0


def test_unfused_rope_by_hand():
    a = resolve(_model(yarn_rotary_scaling_factor=32.0))
    assert a.rope_unfused
    sh = Shard(1, 1, 1, 1, False, True)
    (op,) = [o for o in qkv_ops(a, sh) if o.name == "rope_unfused"]
    # queries 4096 x 64 x 64 and keys 4096 x 8 x 64 elements, bf16
    n = 4096 * (64 * 64 + 8 * 64)
    assert op.count == 12                                   # six full-size kernels per tensor
    assert op.bytes * op.count == pytest.approx(12 * n * 2.0)   # 12 accesses per element forward
    assert op.bytes * op.count * op.bwd_factor == pytest.approx(13 * n * 2.0)
    assert op.launches * op.count == 24                      # with the six small frequency kernels each
    # TP 2 halves the heads each GPU rotates
    (half,) = [o for o in qkv_ops(a, Shard(1, 2, 1, 1, False, True)) if o.name == "rope_unfused"]
    assert half.bytes == pytest.approx(op.bytes / 2)


@pytest.mark.parametrize("kw", [{}, {"yarn_rotary_scaling_factor": 40.0, "yarn_mscale": 1.0,
                                     "yarn_mscale_all_dim": 1.0}])
def test_fused_rope_is_not_an_op(kw):
    """Plain RoPE, and YaRN whose attention factor is 1, take TE's fused kernel (not costed)."""
    a = resolve(_model(**kw))
    assert not a.rope_unfused
    assert "rope_unfused" not in {o.name for o in layer_ops(a, Shard(1, 1, 1, 1, False, True))}


def test_validation_rows_rotate_gpt_oss_unfused_only():
    from simulator.validation.runner import load_rows, scenario_of

    for row in load_rows():
        if row["source"] != "megatron-bridge":
            continue
        a = resolve(scenario_of(row).workload.model)
        assert a.rope_unfused == ("gpt-oss" in row["run"]), row["run"]
