"""Hand-computed cases for the dense cost terms: low-precision quantize kernels, the softmax's
exponentials on the special-function units, context-parallel exchanges, and the validation rows'
gradient dtype."""
from __future__ import annotations

import pytest

from simulator.config.errors import ConfigError
from simulator.config.gpu import catalog_gpu
from simulator.cost import comm
from simulator.cost.compute import QUANTIZE_SUFFIX, op_time, quantize_ops, softmax_time
from simulator.cost.context import cp_exposed, ring_exposed
from simulator.cost.efficiency import DEFAULT
from simulator.cost.step import estimate_step
from dataclasses import replace

from simulator.model.ops import Op, gemm
from simulator.model.precision import QUANTIZATION
from simulator.validation.rows import MODERN_SOURCES


@pytest.mark.parametrize("precision, per_element", [
    ("fp8", 2 + 2 * 1),                       # read bf16, write fp8 twice (row- and column-wise)
    ("fp8_ds", 2 + 2 * 1),
    ("fp8_cs", 2 + 2 + 2 * 1),                # + the amax pass
    ("fp8_mx", 2 + 2 * (1 + 1 / 32)),         # + one E8M0 scale per 32 elements, each orientation
    ("nvfp4", 2 + 2 + 2 + 2 * (0.5 + 1 / 16)),   # amax pass, Hadamard pass, 4-bit payload, E4M3 / 16
    ("mxfp4", 2 + 2 * (0.5 + 1 / 32)),
])
def test_quantize_bytes_per_element_by_hand(precision, per_element):
    assert QUANTIZATION[precision].bytes_per_element() == pytest.approx(per_element)


@pytest.mark.parametrize("precision, per_element", [
    ("fp8", 2 + 1), ("fp8_cs", 2 + 2 + 1),          # Blackwell: one FP8 copy serves both GEMMs
    ("fp8_mx", 2 + 2 * (1 + 1 / 32)),                # block scales run along K: two quantizations
    ("nvfp4", 2 + 2 + 2 + 2 * (0.5 + 1 / 16)),
])
def test_per_tensor_fp8_needs_no_transpose_on_blackwell(precision, per_element):
    assert QUANTIZATION[precision].bytes_per_element(any_layout=True) == pytest.approx(per_element)
    assert catalog_gpu("b200").fp8_any_layout and catalog_gpu("gb300").fp8_any_layout
    assert not catalog_gpu("h100-sxm").fp8_any_layout and not catalog_gpu("mi300x").fp8_any_layout


def test_quantize_ops_bytes_by_hand():
    m, k, n = 1024, 4096, 8192
    ops = [gemm("fc1", m, k, n, 2.0, linear=True), gemm("logits", m, k, 1000, 2.0),
           Op("norm", "memory", 0.0, 1e6)]
    q = quantize_ops(ops, "fp8_cs", microbatches=4)
    assert [o.name for o in q] == ["fc1" + QUANTIZE_SUFFIX]   # only linear layers are quantized
    fwd = 6.0 * (m * k + k * n / 4)       # the input, and a quarter of the once-per-step weight cast
    assert q[0].bytes == pytest.approx(fwd)
    assert q[0].bytes * q[0].bwd_factor == pytest.approx(6.0 * m * n)   # the output gradient
    assert quantize_ops(ops, "bf16") == [] and quantize_ops(ops, "fp16") == []


def test_quantize_kernel_is_memory_bound():
    gpu = catalog_gpu("h100-sxm")
    (q,) = quantize_ops([gemm("qkv", 4096, 4096, 6144, 2.0, linear=True)], "fp8", microbatches=1)
    expect = q.bytes / (gpu.hbm_bandwidth * DEFAULT.memory) + DEFAULT.kernel_overhead
    assert op_time(q, gpu, "fp8", DEFAULT) == pytest.approx(expect)
    (b,) = quantize_ops([gemm("qkv", 4096, 4096, 6144, 2.0, linear=True)], "fp8", microbatches=1, any_layout=True)
    assert b.bytes == pytest.approx(q.bytes * 3 / 4)   # 2 + 1 bytes per element instead of 2 + 2


def test_softmax_exponentials_by_hand():
    flash = Op("flash_attention", "gemm", 1e12, 1e6, bwd_factor=2.5, attention_core=True, exps=1e10)
    gb200, gb300 = catalog_gpu("gb200"), catalog_gpu("gb300")
    assert softmax_time(flash, gb200) == pytest.approx(1e10 / 5.0e12)
    assert softmax_time(flash, gb300) == pytest.approx(1e10 / 10.7e12)
    # the exponentials add to the matmul time, on each GPU by exactly what its SFUs take, forward
    # and backward (the backward recomputes P once); GB300 issues them twice as fast as GB200
    matmuls = replace(flash, exps=0.0)
    for backward in (False, True):
        for gpu, rate in ((gb200, 5.0e12), (gb300, 10.7e12)):
            extra = op_time(flash, gpu, "bf16", DEFAULT, backward) - op_time(matmuls, gpu, "bf16", DEFAULT, backward)
            assert extra == pytest.approx(1e10 / rate)
    assert softmax_time(flash, catalog_gpu("mi300x")) == 0.0      # no published SFU figure
    assert softmax_time(Op("x", "gemm", 1e9, 1e6), gb200) == 0.0   # only fused attention pays it


def test_every_nvidia_catalog_gpu_states_its_exponential_rate():
    for name in ("a100-40gb", "a100-80gb", "h100-sxm", "h800", "h200", "b200", "gb200", "b300", "gb300"):
        assert catalog_gpu(name).sfu_exp_rate > 1e12


def test_ring_exposed_by_hand():
    assert ring_exposed(4, 1.0, 2.0) == pytest.approx(3 * (1.0 - 0.5))   # 3 transfers, 0.5 s hidden each
    assert ring_exposed(4, 0.4, 2.0) == 0.0                               # each hides behind its step
    assert ring_exposed(1, 5.0, 0.0) == 0.0


class _Lay:
    def __init__(self, tp, cp):
        self.tp, self.cp, self.pp, self.dp, self.ep = tp, cp, 1, 1, 1


@pytest.fixture(scope="module")
def tiers(scenario):
    s = scenario("llama3-8b", "parallelism.context_parallel_size=4", "parallelism.tensor_model_parallel_size=1",
                 gpus=8)
    return comm.tiers_of(s.cluster, s.gpu, DEFAULT, s.num_gpus)


def test_cp_p2p_is_the_per_step_ring(tiers):
    lay = _Lay(tp=1, cp=4)
    tokens, width, e = 4096.0, 2048, 2.0
    kv = tokens * width * e
    one, two = comm.send_recv(1, kv, tiers, peers=4), comm.send_recv(1, 2 * kv, tiers, peers=4)
    f, b = cp_exposed("p2p", lay, tiers, tokens, width, 1024, 1024, e, 0.0, 0.0)
    assert (f, b) == (pytest.approx(3 * one), pytest.approx(3 * two))   # nothing to hide behind
    f, b = cp_exposed("p2p", lay, tiers, tokens, width, 1024, 1024, e, 4 * one, 4 * two)
    assert (f, b) == (0.0, 0.0)                                          # one step's attention hides each


def test_cp_all_gather_and_a2a_by_hand(tiers):
    lay = _Lay(tp=1, cp=4)
    g = comm.Group.of("cp", lay)
    tokens, kvw, qw, aw, e = 2048.0, 2048, 1024, 1024, 2.0
    kv = tokens * kvw * e
    f, b = cp_exposed("all_gather", lay, tiers, tokens, kvw, qw, aw, e, 1.0, 1.0)
    assert f == pytest.approx(comm.all_gather(g, 4 * kv, tiers))
    assert b == pytest.approx(f + comm.reduce_scatter(g, 4 * kv, tiers))
    f, b = cp_exposed("a2a", lay, tiers, tokens, kvw, qw, aw, e, 1.0, 1.0)
    expect = comm.all_to_all(g, tokens * (qw + kvw) * e, tiers) + comm.all_to_all(g, tokens * aw * e, tiers)
    assert f == pytest.approx(expect) and b == pytest.approx(expect)
    assert cp_exposed("p2p", _Lay(tp=2, cp=1), tiers, tokens, kvw, qw, aw, e, 0.0, 0.0) == (0.0, 0.0)


def test_cp_comm_type_reaches_the_step(scenario):
    base = ("parallelism.context_parallel_size=4", "parallelism.tensor_model_parallel_size=1")
    times = {kind: estimate_step(scenario("llama3-8b", *base, f"parallelism.cp_comm_type={kind}", gpus=64)).step_time
             for kind in ("p2p", "all_gather", "a2a")}
    assert len(set(times.values())) == 3          # three different exchanges, three step times
    assert all(t > 0 for t in times.values())


def test_a2a_needs_heads_divisible_by_cp(scenario):
    with pytest.raises(ConfigError, match="cp_comm_type"):
        scenario("llama3-8b", "parallelism.context_parallel_size=8", "parallelism.tensor_model_parallel_size=8",
                 "parallelism.cp_comm_type=a2a", gpus=512)


def test_low_precision_recipes_pay_their_casts(scenario):
    """fp8_cs pays an extra amax read over delayed scaling; the casts never make FP8 slower than bf16
    for a large dense model."""
    t = {p: estimate_step(scenario("llama3-70b", f"training.precision={p}")).step_time
         for p in ("bf16", "fp8", "fp8_cs")}
    assert t["fp8"] < t["fp8_cs"] < t["bf16"]


def test_validation_rows_reduce_gradients_in_bf16():
    from simulator.validation.rows import MEGATRON_BRIDGE_SOURCES
    from simulator.validation.runner import load_rows, workload_of
    rows = load_rows()
    for r in rows:
        w = workload_of(r)
        if r["source"] in MODERN_SOURCES:
            assert w["training"]["grad_dtype"] == "bf16", r["run"]
            # plain "fp8" (delayed scaling) only where the release predates current scaling
            assert w["training"]["precision"] != "fp8" or r["source"] in ("nemo-24.07", "nemo-long-sequence")
        else:
            assert "grad_dtype" not in w["training"], r["run"]


def _loss_op(fused: bool):
    from simulator.model.arch import resolve
    from simulator.model.ops import Shard, head_ops
    from simulator.config.workload import ModelConfig
    a = resolve(ModelConfig(num_layers=2, hidden_size=1024, num_attention_heads=8, seq_length=4096,
                            vocab_size=32000))
    sh = Shard(micro_batch=2, tp=4, cp=1, ep=1, sequence_parallel=True, flash_attention=True,
               fused_cross_entropy=fused)
    (loss,) = [op for op in head_ops(a, sh) if op.name == "cross_entropy"]
    return loss


def test_fused_cross_entropy_bytes_by_hand():
    logits = 2 * 4096 * 32000 / 4                   # tokens x vocabulary shard of one TP rank
    unfused, fused = _loss_op(False), _loss_op(True)
    # unfused: bf16 read, fp32 write and read, per pass; as much again in the backward
    assert unfused.bytes == pytest.approx(logits * (2 + 4 + 4))
    assert unfused.bytes * unfused.bwd_factor == pytest.approx(logits * 10)
    # TE's Triton kernels: one bf16 read forward (online softmax); read + in-place write backward
    assert fused.bytes == pytest.approx(logits * 2)
    assert fused.bytes * fused.bwd_factor == pytest.approx(logits * 4)


def test_cross_entropy_fusion_reaches_step_and_memory(scenario):
    from simulator.simulate import memory_of
    base = scenario("llama3-8b")
    fused = scenario("llama3-8b", "training.cross_entropy_loss_fusion=true")
    assert not base.workload.training.cross_entropy_loss_fusion
    t0, t1 = estimate_step(base), estimate_step(fused)
    assert t1.step_time < t0.step_time
    # only the last stage's loss changes: 14 of 20 bytes per logit saved, forward and backward,
    # at the memory-bound rate
    a, lay, gpu = base.workload.model, base.layout, base.gpu
    logits = lay.micro_batch_size * a.seq_length * a.vocab_size / lay.tp
    saved = lay.num_microbatches * logits * (20 - 6) / (gpu.hbm_bandwidth * DEFAULT.memory)
    assert t0.step_time - t1.step_time == pytest.approx(saved, rel=1e-6)
    # the fp32 copy of the logits is not held
    m0, m1 = memory_of(base), memory_of(fused)
    assert m0.activations - m1.activations == pytest.approx(4 * logits)


def test_megatron_bridge_rows_fuse_the_loss():
    from simulator.validation.rows import MEGATRON_BRIDGE_SOURCES
    from simulator.validation.runner import load_rows, workload_of
    for r in load_rows():
        fused = workload_of(r)["training"].get("cross_entropy_loss_fusion", False)
        assert fused == (r["source"] in MEGATRON_BRIDGE_SOURCES), r["run"]


def test_block_scaled_gemms_swizzle_their_scales_by_hand():
    from simulator.cost.compute import SWIZZLE_SUFFIX, host_launches
    m, k, n = 2048, 4096, 14336
    op = gemm("fc1", m, k, n, 2.0, linear=True)
    for per_tensor in ("fp8", "fp8_cs", "fp8_ds"):
        assert not [o for o in quantize_ops([op], per_tensor) if o.name.endswith(SWIZZLE_SUFFIX)]
    for precision, scale in (("fp8_mx", 1 / 32), ("nvfp4", 1 / 16), ("mxfp4", 1 / 32)):
        (swz,) = [o for o in quantize_ops([op], precision) if o.name.endswith(SWIZZLE_SUFFIX)]
        assert swz.count == 2                                     # one kernel per GEMM operand
        assert swz.count * swz.bytes == pytest.approx(2 * 2 * scale * (m * k + k * n))   # read + write
        bwd = 2 * 2 * scale * ((m * n + k * n) + (m * n + m * k))  # dgrad's and wgrad's operands
        assert swz.count * swz.bytes * swz.bwd_factor == pytest.approx(bwd)
        # issued from C++ inside the GEMM's call: no host dispatch of their own
        assert host_launches(swz, precision) == 0 and host_launches(swz, precision, backward=True) == 0
        gpu = catalog_gpu("b200")
        fwd_t = op_time(swz, gpu, precision, DEFAULT)
        bwd_t = op_time(swz, gpu, precision, DEFAULT, backward=True)
        bw = gpu.hbm_bandwidth * DEFAULT.memory
        assert fwd_t == pytest.approx(2 * (swz.bytes / bw + DEFAULT.kernel_overhead))
        assert bwd_t == pytest.approx(2 * (swz.bytes * swz.bwd_factor / bw + 2 * DEFAULT.kernel_overhead))


def test_grouped_expert_gemms_swizzle_once_per_operand():
    from simulator.cost.compute import SWIZZLE_SUFFIX
    grouped = Op("expert_fc1", "gemm", 8 * 2.0 * 512 * 1024 * 2048, 1.0, linear=True,
                 shape=(512, 1024, 2048), group=8, launches=8)
    (swz,) = [o for o in quantize_ops([grouped], "fp8_mx") if o.name.endswith(SWIZZLE_SUFFIX)]
    assert swz.count == 2 and swz.launches == 0    # multi_tensor_swizzle_scaling_factors: all experts, from C++
    (one,) = [o for o in quantize_ops([replace(grouped, group=1, launches=1)], "fp8_mx")
              if o.name.endswith(SWIZZLE_SUFFIX)]
    assert swz.bytes == pytest.approx(8 * one.bytes)   # but every expert's scales


def test_a_grouped_expert_gemm_quantizes_every_experts_tensors():
    """quantize_ops on a grouped GEMM (one expert's shape, op.group experts) casts all of them: the
    cast bytes are the group's count times one expert's."""
    from simulator.cost.compute import quantize_ops
    from simulator.model.ops import Op
    m, k, n = 96.0, 2048.0, 1536.0
    one = Op("expert_fc1", "gemm", 2 * m * k * n, 2 * (m * k + k * n + m * n), linear=True, shape=(m, k, n))
    many = Op("expert_fc1", "gemm", 16 * 2 * m * k * n, 16 * 2 * (m * k + k * n + m * n), linear=True,
              shape=(m, k, n), group=16, launches=16)
    for precision in ("fp8_cs", "fp8_mx"):
        q1 = quantize_ops([one], precision, microbatches=4)[0]
        q16 = quantize_ops([many], precision, microbatches=4)[0]
        assert q16.bytes == pytest.approx(16 * q1.bytes) and q16.bwd_factor == pytest.approx(q1.bwd_factor)
