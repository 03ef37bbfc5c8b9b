"""Time of a compute op on a GPU: a roofline of its FLOPs and HBM bytes with global efficiencies.

GEMMs with a known shape are costed by how cuBLAS-style kernels execute them: the (m x n) output is
cut into TILE_M x TILE_N tiles, one tile per SM at a time, so a GEMM runs in ceil(tiles / SMs) waves
and a partly filled last wave, or tiles padded past m or n, compute for nothing (wave and tile
quantisation: NVIDIA, "Matrix Multiplication Background User's Guide", Deep Learning Performance
docs). Each tile also pays a fixed prologue/epilogue worth K_OVERHEAD of its reduction depth k, which
is what makes thin-k GEMMs slow. The backward's two GEMMs (dgrad: m x n -> m x k; wgrad: reduce over
m -> k x n) have their own shapes. Efficiency.gemm (fitted) is the rate of a large, well-shaped GEMM.
"""
from __future__ import annotations

import math

from simulator.config.gpu import GPUSpec
from simulator.cost.efficiency import Efficiency
from simulator.model.ops import GROUP_STREAMS, Op
from simulator.model.precision import is_low_precision, quantization

# Output tile of a bf16/fp8 training GEMM: 128 x 128 (CUTLASS's default Hopper/Ampere tensor-core tile,
# the median cuBLAS heuristic choice for transformer shapes; NVIDIA's GEMM guide uses 128 x 128 for its
# wave-quantisation examples).
TILE_M, TILE_N = 128, 128
# Per-tile fixed cost (pipeline fill, epilogue) in units of reduction depth: one 64-deep K stage of a
# multistage mainloop. Assumption, within the 32-128 of CUTLASS's stage depths.
K_OVERHEAD = 64


def gemm_rate(gpu: GPUSpec, precision: str, eff: Efficiency) -> float:
    """Achievable FLOP/s of a large training GEMM at ``precision``."""
    low = is_low_precision(precision)   # fp8, fp8_cs, fp8_mx, nvfp4, ...: the format's peak
    base = gpu.peak("bf16" if low else precision)
    rate = base * gpu.max_gemm_fraction * eff.gemm
    if low:
        rate *= (gpu.peak(precision) / base) * eff.fp8_gemm
    return rate


def shape_efficiency(m: float, k: float, n: float, sms: int | None, concurrent: int = 1) -> float:
    """Useful fraction of a GEMM's tensor-core time: tile padding, wave quantisation, thin-k cost.

    ``concurrent`` identical GEMMs in flight at once (a grouped GEMM's streams) share the SMs: their
    tiles fill the waves together. Tends to 1 for a deep GEMM whose dimensions are multiples of the
    tile and whose tiles fill whole waves."""
    if m <= 0 or k <= 0 or n <= 0:
        return 1.0
    tm, tn = math.ceil(m / TILE_M), math.ceil(n / TILE_N)
    padding = (m * n) / (tm * TILE_M * tn * TILE_N)
    tiles = tm * tn * concurrent
    waves = (tiles / (math.ceil(tiles / sms) * sms)) if sms else 1.0
    depth = k / (k + K_OVERHEAD)
    return padding * waves * depth


def concurrency(op: Op) -> int:
    """GEMMs of a grouped op in flight at once: one per stream (Transformer Engine's 4), or all of
    them when one kernel runs the whole group (``Op.one_kernel``)."""
    return op.group if op.one_kernel else min(op.group, GROUP_STREAMS)


def _backward_shape_factor(op: Op, sms: int | None) -> float:
    """Mean slowdown of dgrad and wgrad against the rate of a well-shaped GEMM."""
    m, k, n = op.shape
    c = concurrency(op)
    dgrad = shape_efficiency(m, n, k, sms, c)      # (m x n) @ (n x k)
    wgrad = shape_efficiency(k, m, n, sms, c)      # (k x m) @ (m x n)
    return 0.5 * (1.0 / dgrad + 1.0 / wgrad)


# FlashAttention-2 against the generation's best fused attention kernel (training.attention_kernel:
# flash2 vs fused), by compute capability, (forward, backward) throughput ratios. FA2 issues the
# Ampere-style synchronous mma instructions; on Hopper and Blackwell the fused kernels (cuDNN,
# FlashAttention-3) use the asynchronous warpgroup / tcgen05 tensor-core paths and TMA.
#  - Ampere and older (cc < 9): 1.0. FA2 is the fused kernel of that generation (FlashAttention-2,
#    Dao 2023: 50-73 % of A100 peak), and the fitted rate stands for it.
#  - Hopper (cc 9.x): forward 329.5 / 631.3 TFLOP/s = 0.522, PyTorch SDPA's flash backend against its
#    cuDNN backend on an H100 (batch 1, 24 heads, 4,608 tokens, head dim 128; tritonbench on
#    2.6.0.dev20241204, pytorch/pytorch#142132; FlashAttention-3 measured 631.8 in the same run);
#    backward 1 / 1.625 = 0.615, the middle of FlashAttention-3's 1.5-1.75x over FA2 in the backward
#    pass (Shah et al. 2024, arXiv 2407.08608, section 4.1).
#  - Blackwell (cc >= 10): 0.57 both ways, from the one published end-to-end pair: torchtitan's
#    Llama 3 8B (8,192 tokens, op-level selective AC, eager) on B200 went from 10,902 to 12,211
#    tokens/s/GPU when SDPA moved from FlashAttention-2 to cuDNN (pytorch/torchtitan#1196, 1.12x),
#    which this model reproduces at 0.57. The kernels alone differ more -- FA2 343 TFLOP/s forward
#    (head dim 64, 8K, Dao-AILab/flash-attention#1589) against cuDNN's 1,147 on the same shape
#    (#2605): 0.30; cuDNN against flash-attn 2.8.3 at ~506K tokens, 0.35 (sgl-project/sglang#33655)
#    -- but applied to the fitted fused rate they would cost that run 1.37x, not the 1.12x measured.
FLASH2_SPEED = ((9.0, (0.522, 0.615)), (10.0, (0.57, 0.57)))


def attention_kernel_speed(op: Op, gpu: GPUSpec, backward: bool = False) -> float:
    """Throughput of ``op``'s attention kernel relative to the fused one the efficiencies describe
    (1.0 for "fused", and for FlashAttention-2 on GPUs older than Hopper or of unknown generation)."""
    if op.kernel != "flash2" or gpu.compute_capability is None:
        return 1.0
    speed = 1.0
    for cc, (fwd, bwd) in FLASH2_SPEED:
        if gpu.compute_capability >= cc:
            speed = bwd if backward else fwd
    return speed


def sparse_gemm_speedup(gpu: GPUSpec, eff: Efficiency) -> float:
    """Speed of a 2:4-sparse GEMM over its dense twin: the catalog's sparse peak ratio x eff.sparse_2to4."""
    return max(1.0, gpu.sparsity_2to4_speedup * eff.sparse_2to4)


def op_time(op: Op, gpu: GPUSpec, precision: str, eff: Efficiency, backward: bool = False) -> float:
    """Seconds for one forward (or backward) execution of ``op`` and its identical copies.

    Under FP8 only the transformer blocks' linear layers run in FP8 (Transformer Engine's recipe);
    attention, the router and the output layer stay BF16. 2:4-sparse ops run ``sparse_gemm_speedup``
    times faster, forward and backward alike (the measured speedup is over both).
    """
    scale = op.bwd_factor if backward else 1.0
    if scale == 0.0:
        return 0.0                          # no backward (e.g. the dispatcher's metadata)
    if op.per_gemm:
        kernels = 2.0 if backward else 1.0    # one before each of the dgrad and wgrad GEMMs
    else:
        kernels = max(1.0, round(scale)) if op.kind == "gemm" else 1.0   # dgrad + wgrad in backward
    mem = op.bytes * scale / (gpu.hbm_bandwidth * eff.memory)
    # a grouped op's GEMMs run concurrent streams' worth at a time: their fixed costs overlap that much
    overhead = kernels * eff.kernel_overhead * op.group / concurrency(op)
    if op.kind == "memory":
        return (mem + overhead) * op.count
    prec = precision if (op.linear or not is_low_precision(precision)) else "bf16"
    if op.fp8:   # FP8 attention (set only under a low precision, cost/stage.py:shard_of)
        prec = "fp8"   # E4M3 on the FP8 tensor cores whatever the linear layers' recipe
    rate = gemm_rate(gpu, prec, eff) * (eff.attention if op.attention_core else 1.0)
    if op.attention_core:
        rate *= attention_kernel_speed(op, gpu, backward)
    if op.sparse:
        rate *= sparse_gemm_speedup(gpu, eff)
    comp = op.flops * scale / rate
    if op.shape is not None:
        slow = (_backward_shape_factor(op, gpu.sm_count) if backward
                else 1.0 / shape_efficiency(*op.shape, gpu.sm_count, concurrency(op)))
        comp *= slow
    comp += softmax_time(op, gpu)
    return (max(comp, mem) + overhead) * op.count


def softmax_time(op: Op, gpu: GPUSpec) -> float:
    """Seconds the special-function units spend on a fused attention kernel's exponentials (one
    pass: the forward, or the backward's recomputation of the probabilities).

    Within a tile the softmax sits between the two matmuls (S = QK^T, then P = exp(S - max), then
    PV): the tensor cores wait for the exponentials, so their time adds to the matmul time rather
    than hiding under it (NVIDIA, "Making Softmax More Efficient with NVIDIA Blackwell Ultra", 2025:
    on GB200 the second matmul waits for MUFU.EX2; FlashAttention-4, Zadouri et al. 2025: on B200
    the exponential unit (16/clk/SM) needs as many cycles as the 128 x 128 x 128 tile's matmuls).
    At the SFU's issue rate (GPUSpec.sfu_exp_rate, a hardware throughput: no efficiency applied);
    nothing when the catalog has no figure."""
    if not op.exps or not gpu.sfu_exp_rate:
        return 0.0
    return op.exps / gpu.sfu_exp_rate


def host_launches(op: Op, precision: str, backward: bool = False) -> float:
    """Kernels the host launches for one forward (or backward) execution of ``op`` and its copies.

    A GEMM's backward launches two (data and weight gradient); a linear layer under a low precision
    quantises its input first (Transformer Engine casts per GEMM operand: one more launch per GEMM)."""
    per = op.launches
    if backward and op.bwd_factor == 0.0:
        return 0.0
    if op.per_gemm and backward:
        per *= 2
    elif op.kind == "gemm" and backward:
        per *= max(1.0, round(op.bwd_factor))
    if op.linear and is_low_precision(precision):
        per *= 2
    return per * op.count


def host_time(ops: list[Op], precision: str, eff: Efficiency, backward: bool = False,
              graphed: frozenset[str] = frozenset()) -> float:
    """Host (CPU) seconds to launch ``ops``: each launch costs eff.host_launch (PyTorch dispatch,
    autograd, the CUDA launch call). Ops in a CUDA-graph scope of ``graphed`` replay as one graph
    launch per scope (Megatron-Core / Transformer Engine graph capture); "full" graphs everything."""
    if "full" in graphed:
        return eff.host_launch if ops else 0.0
    launches = sum(host_launches(op, precision, backward) for op in ops if op.scope not in graphed)
    launches += len({op.scope for op in ops if op.scope in graphed})
    return launches * eff.host_launch


def ops_time(ops: list[Op], gpu: GPUSpec, precision: str, eff: Efficiency, backward: bool = False,
             only_attention_core: bool = False) -> float:
    return sum(op_time(op, gpu, precision, eff, backward) for op in ops
               if op.attention_core or not only_attention_core)


QUANTIZE_SUFFIX = "_quantize"
SWIZZLE_SUFFIX = "_scale_swizzle"


def quantize_ops(ops: list[Op], precision: str, microbatches: int = 1, any_layout: bool = False) -> list[Op]:
    """The memory-bound cast kernels a low-precision recipe adds around each linear-layer GEMM.

    Forward: the GEMM's input (m x k) is quantized (model.precision.Quantization: amax pass, cast,
    both orientations, block scales); backward: the output gradient (m x n) likewise, for the dgrad
    and wgrad GEMMs. The weight (k x n) is quantized once per step and reused by every microbatch
    (Transformer Engine caches it from the first microbatch), so each microbatch carries 1 /
    ``microbatches`` of it. One kernel per quantized tensor (TE's fused cast-transpose). Attention,
    the router and the output layer stay bf16: no casts. ``any_layout``: the GPU's FP8 GEMMs take
    non-TN operands (GPUSpec.fp8_any_layout), so per-tensor FP8 writes one copy."""
    q = quantization(precision)
    if q is None:
        return []
    per = q.bytes_per_element(any_layout)
    out = []
    for op in ops:
        if not (op.linear and op.kind == "gemm" and op.shape is not None):
            continue
        m, k, n = op.shape
        # a grouped GEMM's shape is one expert's (op.group of them): every expert's input, weight
        # and output gradient is quantized
        fwd = per * (m * k * (not op.input_cast_fused) + k * n / max(microbatches, 1)) * op.group
        bwd = per * m * n * op.group * (not op.grad_cast_fused)
        out.append(Op(op.name + QUANTIZE_SUFFIX, "memory", 0.0, fwd, bwd_factor=bwd / fwd, count=op.count))
        if not q.per_tensor:
            # block scales: before every GEMM, Transformer Engine rewrites both operands' scale
            # factors into the tiled layout cuBLASLt's block-scaled GEMMs read, one kernel per
            # operand (swizzle_scaling_factors before each cuBLAS call,
            # transformer_engine/pytorch/csrc/extensions/gemm.cpp and csrc/util.cpp @ v2.9 =
            # 70f53666): read and write each operand's scales; dgrad and wgrad swizzle their own
            # (a grouped GEMM's one multi-tensor swizzle per operand covers all its experts' scales)
            f_sc = 2.0 * q.scale * (m * k + k * n) * op.group
            b_sc = 2.0 * q.scale * ((m * n + k * n) + (m * n + m * k)) * op.group
            # launched from C++ inside the GEMM's own call (the same host dispatch), so no Python-
            # level launch of their own: launches 0
            out.append(Op(op.name + SWIZZLE_SUFFIX, "memory", 0.0, f_sc, bwd_factor=b_sc / f_sc,
                          count=2 * op.count, per_gemm=True, launches=0.0))
    return out
