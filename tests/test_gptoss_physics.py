"""GPT-OSS step physics: the unfused bias-dropout-add (Megatron-Core bias_dropout_fusion = False, as
Megatron-Bridge's GPT-OSS provider sets), by hand."""
import pytest

from simulator.config.workload import ModelConfig
from simulator.model.arch import resolve
from simulator.model.ops import Shard, layer_ops, residual_ops


def _model(**kw) -> ModelConfig:
    return ModelConfig.model_validate(dict(
        num_layers=2, hidden_size=1024, num_attention_heads=8, vocab_size=1000, seq_length=2048,
        activation="swiglu", **kw))


def test_fused_bias_dropout_add_is_one_pass():
    a = resolve(_model())
    (op,) = residual_ops(a, 4096, 2.0, "attn")
    # read the sublayer output and the residual, write the sum: 3 x 4096 x 1024 x 2 bytes
    assert op.name == "attn_residual" and op.bytes == pytest.approx(3 * 4096 * 1024 * 2)
    (op,) = residual_ops(resolve(_model(hidden_dropout=0.1)), 4096, 2.0, "attn")
    assert op.bytes == pytest.approx(3.5 * 4096 * 1024 * 2)   # + the 1-byte mask


def test_unfused_bias_dropout_add_is_one_kernel_per_step():
    T, h, e = 4096, 1024, 2.0
    # biases, p = 0: bias add (read + write) and residual add (read 2, write 1); no dropout kernel
    ops = residual_ops(resolve(_model(bias_dropout_fusion=False)), T, e, "mlp")
    assert [o.name for o in ops] == ["mlp_bias_add", "mlp_residual"]
    assert [o.bytes for o in ops] == pytest.approx([2 * T * h * e, 3 * T * h * e])
    # p > 0: dropout reads, writes and stores a 1-byte mask
    ops = residual_ops(resolve(_model(bias_dropout_fusion=False, hidden_dropout=0.1)), T, e, "mlp")
    assert [o.name for o in ops] == ["mlp_bias_add", "mlp_dropout", "mlp_residual"]
    assert ops[1].bytes == pytest.approx(2.5 * T * h * e)
    # no biases: only the residual add
    ops = residual_ops(resolve(_model(bias_dropout_fusion=False, add_bias_linear=False)), T, e, "mlp")
    assert [o.name for o in ops] == ["mlp_residual"]


def test_unfused_bias_dropout_add_moves_more_and_launches_more():
    sh = Shard(1, 1, 1, 1, False, True)
    fused = layer_ops(resolve(_model()), sh)
    unfused = layer_ops(resolve(_model(bias_dropout_fusion=False)), sh)
    assert len(unfused) == len(fused) + 2          # a bias add after attention and after the MLP
    extra = sum(o.bytes for o in unfused) - sum(o.bytes for o in fused)
    assert extra == pytest.approx(2 * 2 * 2048 * 1024 * 2.0)   # 2 more elements per token, twice
