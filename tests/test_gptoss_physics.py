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


# ---- the clamped gated activation (activation_func_clamp_value) ----------------------------------

def _moe(**kw) -> ModelConfig:
    return _model(moe={"num_experts": 32, "moe_router_topk": 4, "moe_ffn_hidden_size": 512}, **kw)


def test_clamp_is_three_eager_kernels_by_hand():
    # EP 8 -> 4 local experts; 2048 tokens x top-4 x EP 8 / 32 experts = 2048 tokens per expert
    a = resolve(_moe(add_bias_linear=False, activation_func_clamp_value=7.0))
    ops = {o.name: o for o in layer_ops(a, Shard(1, 1, 1, 8, False, True), moe=True)}
    half = 4 * 2048 * 512            # one half (gate or linear) of fc1's output over the local experts
    clamp, cat = ops["expert_act_clamp"], ops["expert_act_clamp_cat"]
    # two clamps: read + write a half each; the concatenation: read + write both halves
    assert clamp.count == 2 and clamp.bytes == pytest.approx(2 * half * 2.0)
    assert cat.count == 1 and cat.bytes == pytest.approx(4 * half * 2.0)
    # backward: each clamp 3 passes over its half, the split's join 4
    backward = clamp.bytes * clamp.bwd_factor * clamp.count + cat.bytes * cat.bwd_factor
    assert backward == pytest.approx(10 * half * 2.0)
    assert "expert_act_clamp" not in {o.name for o in layer_ops(resolve(_moe(add_bias_linear=False)),
                                                                  Shard(1, 1, 1, 8, False, True), moe=True)}


def test_clamp_keeps_a_clamped_copy_for_the_backward():
    from simulator.model.memory import activation_bytes_per_layer
    args = dict(micro_batch=1, tp=1, cp=1, sequence_parallel=False, flash_attention=True, moe=True)
    plain = activation_bytes_per_layer(resolve(_moe()), recompute="none", **args)
    clamped = activation_bytes_per_layer(resolve(_moe(activation_func_clamp_value=7.0)), recompute="none", **args)
    # 2048 tokens x top-4, fc1 output 2 x 512 wide, 2 bytes
    assert clamped - plain == pytest.approx(2048 * 4 * 2 * 1024)
    # selective_op recomputes the activation (Megatron's moe_act): nothing more kept
    assert activation_bytes_per_layer(resolve(_moe(activation_func_clamp_value=7.0)), recompute="selective_op", **args) \
        == activation_bytes_per_layer(resolve(_moe()), recompute="selective_op", **args)


# ---- fc2's expert bias (TEGroupedMLP._apply_bias) --------------------------------------------------

def test_expert_fc2_bias_per_local_expert_by_hand():
    from simulator.cost.compute import host_launches
    sh = Shard(1, 1, 1, 8, False, True)
    ops = {o.name: o for o in layer_ops(resolve(_moe()), sh, moe=True)}
    m, h = 2048, 1024                 # routed tokens per local expert, hidden
    b, cat = ops["expert_fc2_bias"], ops["expert_fc2_bias_cat"]
    # t + b * p per local expert: two kernels, 4 elements per token and channel in all
    assert b.count == 2 * 4 and b.count * b.bytes == pytest.approx(4 * 4 * m * h * 2.0)
    assert b.count * b.bytes * b.bwd_factor == pytest.approx(4 * 6 * m * h * 2.0)   # bias + prob gradients
    assert cat.bytes == pytest.approx(2 * 4 * m * h * 2.0) and cat.bwd_factor == 1.0
    assert host_launches(b, "bf16") + host_launches(cat, "bf16") == 2 * 4 + 1
    # no biases, no such ops
    names = {o.name for o in layer_ops(resolve(_moe(add_bias_linear=False)), sh, moe=True)}
    assert not {"expert_fc2_bias", "expert_fc2_bias_cat"} & names


def test_selective_op_reruns_only_norms_and_activations():
    """Megatron recompute_modules [layernorm, moe_act] (trainsim's selective_op): the norms, the clamp
    and the activation rerun; the residual adds, fc2's bias, the permutation and the GEMMs do not."""
    ops = layer_ops(resolve(_moe(activation_func_clamp_value=7.0, bias_dropout_fusion=False)),
                    Shard(1, 1, 1, 8, False, True), moe=True)
    assert {o.name for o in ops if o.rerun} == {"input_norm", "post_attn_norm", "expert_act_clamp",
                                                 "expert_act_clamp_cat", "expert_activation"}
