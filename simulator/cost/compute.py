"""Time of a compute op on a GPU: a roofline of its FLOPs and HBM bytes with global efficiencies."""
from __future__ import annotations

from simulator.config.gpu import GPUSpec
from simulator.cost.efficiency import Efficiency
from simulator.model.ops import Op
from simulator.model.precision import is_low_precision


def gemm_rate(gpu: GPUSpec, precision: str, eff: Efficiency) -> float:
    """Achievable FLOP/s of a large training GEMM at ``precision``."""
    low = is_low_precision(precision)   # fp8, fp8_cs, fp8_mx, nvfp4, ...: the format's peak
    base = gpu.peak("bf16" if low else precision)
    rate = base * gpu.max_gemm_fraction * eff.gemm
    if low:
        rate *= (gpu.peak(precision) / base) * eff.fp8_gemm
    return rate


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
    kernels = max(1.0, round(scale)) if op.kind == "gemm" else 1.0   # dgrad + wgrad in backward
    mem = op.bytes * scale / (gpu.hbm_bandwidth * eff.memory)
    overhead = kernels * eff.kernel_overhead
    if op.kind == "memory":
        return (mem + overhead) * op.count
    prec = precision if (op.linear or not is_low_precision(precision)) else "bf16"
    rate = gemm_rate(gpu, prec, eff) * (eff.attention if op.attention_core else 1.0)
    if op.sparse:
        rate *= sparse_gemm_speedup(gpu, eff)
    comp = op.flops * scale / rate
    return (max(comp, mem) + overhead) * op.count


def ops_time(ops: list[Op], gpu: GPUSpec, precision: str, eff: Efficiency, backward: bool = False,
             only_attention_core: bool = False) -> float:
    return sum(op_time(op, gpu, precision, eff, backward) for op in ops
               if op.attention_core or not only_attention_core)
