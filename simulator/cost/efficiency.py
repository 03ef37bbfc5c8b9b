"""The few global free parameters of the cost model, with where their values come from.

They are fitted once, on the public validation set only (simulator/validation/fit.py, docs/model.md),
and are the same for every workload, cluster and GPU. Nothing here is tuned per case.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace


@dataclass(frozen=True)
class Efficiency:
    # Fraction of the catalog's best measured matmul throughput (GPUSpec.max_gemm_fraction x peak)
    # that training GEMMs reach (shapes, wave quantisation, epilogues). Fitted.
    gemm: float = 0.8521
    # Attention kernels' matmuls (flash or unfused batched) relative to the GEMM rate; a fused kernel's
    # softmax exponentials are costed on their own at the SFU rate (cost/compute.softmax_time). Fitted.
    attention: float = 0.5166
    # Fixed cost per kernel launch and tail (launch gaps, synchronisation, wave tails), added to the
    # roofline time of every kernel. Fitted.
    kernel_overhead: float = 2.6e-5
    # Host (CPU) time per kernel launch in eager PyTorch: Python and PyTorch dispatch, autograd
    # bookkeeping, the CUDA launch call. A layer cannot run faster than its launches (cost/stage.py);
    # CUDA graphs replay a captured scope as one launch. Fitted.
    host_launch: float = 4.398e-5
    # Fraction of HBM bandwidth that element-wise / memory-bound kernels reach. Fitted.
    memory: float = 0.717
    # Fraction of NIC line rate that NCCL collectives reach as bus bandwidth across domains
    # (nccl-tests all-reduce, 1 GB, DGX H100 with 8 x 400G NDR: ~370-385 GB/s at 16 nodes of 400 GB/s,
    # 0.92-0.96; 320-350 GB/s on smaller or busier fabrics). Fitted within FIT_BOUNDS: just under the
    # top of that range (at it, 0.96, while ring gathers paid a network hop on every step).
    network: float = 0.955
    # Fraction of the per-GPU NVLink (or Infinity Fabric) rate a ring collective reaches inside a
    # scale-up domain (nccl-tests ring all-reduce bus bandwidth, 8 GPUs: DGX A100 ~230-240 of 300 GB/s,
    # DGX H100 ~360-370 of 450 GB/s -> 0.77-0.82). Fitted within FIT_BOUNDS: at the top of its range
    # since sequence-parallel TP is costed as all-gathers and reduce-scatters (cost/stage.py), which
    # NCCL also runs with NVLink SHARP on NVSwitch 3 (its AllGather / ReduceScatter NVLS kernels, rate
    # unpublished): the rows want them at the ring's best measured rate or above.
    nvlink: float = 0.85
    # NVLink SHARP all-reduce: bytes/s per GPU per direction over the NVLink rate. 8 x H100 NVLS
    # all-reduce reaches ~480 GB/s bus bandwidth (reference.md, nccl-tests): algorithm bandwidth
    # 480 / (2 x 7/8) = 274 GB/s, / 450 = 0.61. Not fitted (a measured figure).
    nvls: float = 0.61
    # Low-precision (FP8 / FP4) GEMM kernels reach this fraction of their format's peak relative to
    # what BF16 GEMMs reach of theirs. The kernels only: the recipes' cast / amax / block-scale /
    # Hadamard passes are costed as memory-bound kernels of their own (cost/compute.quantize_ops).
    # Applied to the linear layers only (attention, router, output layer stay BF16). Fitted.
    fp8_gemm: float = 0.9375
    # 2:4-sparse MLP GEMMs reach this fraction of the catalog's sparse speedup (2x on A100/H100):
    # PyTorch's SemiSparseLinear runs the forward + backward of ViT-L's MLP linear layers 1.3x faster
    # on A100, including the per-step re-sparsification (Cai, Haziza, Rao 2024, "Accelerating Neural
    # Network Training with Semi-Structured (2:4) Sparsity", pytorch.org blog) -> 1.3 / 2 = 0.65.
    # Not fitted (no sparse run in the public set); docs/levers.md.
    sparse_2to4: float = 0.65
    # NCCL per-step latencies (nccl-tests PERFORMANCE.md / NCCL tuning model): per ring hop inside a
    # NVLink domain and across the network, and a base launch latency per collective. The network hop
    # is NCCL's own figure, not fitted: hwLat[NET][Ring][Simple] = 14 us (NVIDIA/nccl
    # src/graph/tuning.cc @ b6475625). Only the 2021 DeepSpeed ZeRO-3 rows are sensitive to it, so a
    # fitted value was pinned by one source and drifted to a bound whenever that source was left out
    # (docs/validation.md). These are the Simple protocol's; LL and LL128 take NCCL's own figures
    # (cost/comm.py:nccl_protocols). The NVLink step stays 1 us below the tuner's 3.4 us: with it a
    # 1 GB all-reduce over 16 DGX H100 nodes falls below the bus bandwidth nccl-tests measures.
    hop_latency_nvlink: float = 1.0e-6
    hop_latency_network: float = 1.4e-5
    collective_base_latency: float = 8.4e-6   # NCCL Simple protocol base latency

    def with_(self, **kw: float) -> "Efficiency":
        return replace(self, **kw)


DEFAULT = Efficiency()

# Efficiency fields that are fractions of a peak rate (in (0, 1]); the others are times (> 0)
FRACTIONS = ("gemm", "attention", "memory", "network", "nvlink", "nvls", "fp8_gemm", "sparse_2to4")


# what-if room around the fitted ranges (FIT_BOUNDS): a fraction under 1 % of a peak rate, or a
# per-kernel / per-hop time over a second, describes no working GPU or link (and 1e-320 made the
# step time NaN)
MIN_FRACTION = 0.01
MAX_TIME_S = 1.0


def value_problem(field: str, value: object) -> str | None:
    """What is wrong with ``value`` for the efficiency ``field`` (None: nothing): the fractions of a
    peak rate (FRACTIONS) are in [MIN_FRACTION, 1], the times in (0, MAX_TIME_S]."""
    number = not isinstance(value, bool) and isinstance(value, (int, float))
    if field in FRACTIONS:
        return (None if number and MIN_FRACTION <= value <= 1
                else f"a fraction of the peak rate must be in [{MIN_FRACTION:g}, 1]")
    return (None if number and math.isfinite(value) and 0 < value <= MAX_TIME_S
            else f"a time must be positive and at most {MAX_TIME_S:g} s")


def value_expected(field: str) -> str:
    """What ``value_problem`` asks of the efficiency ``field``, for an error's "expected"."""
    return (f"a number >= {MIN_FRACTION:g} and <= 1" if field in FRACTIONS
            else f"a number > 0 and <= {MAX_TIME_S:g} (seconds)")

# The parameters validation/fit.py fits, each inside its published physical range (docs/model.md):
FIT_BOUNDS: dict[str, tuple[float, float]] = {
    # cuBLAS on large square bf16 GEMMs reaches the catalog's max_gemm_fraction by definition (1.0);
    # training shapes with epilogues land at 60-100% of that (Bekman, ml-engineering, "maximum
    # achievable matmul FLOPS"; NVIDIA's Megatron-Core GEMM-efficiency figures)
    "gemm": (0.6, 1.0),
    # FlashAttention-2 forward+backward reaches 50-73% of A100 peak, FlashAttention-3 ~75% of H100
    # (Dao 2023; Shah et al. 2024) relative to a GEMM rate of ~80% of peak -> 0.3-1.0
    "attention": (0.3, 1.0),
    # element-wise kernels reach 60-95% of HBM bandwidth (STREAM-like copies on A100/H100)
    "memory": (0.6, 0.95),
    # NCCL bus bandwidth / NIC line rate: 0.80-0.96 for 1 GB all-reduces (nccl-tests on DGX A100/H100);
    # 0.6 leaves room for congested fabrics
    "network": (0.6, 0.96),
    # ring bus bandwidth / NVLink rate inside a domain: 0.77-0.82 measured (nccl-tests, DGX A100 / H100),
    # widened upwards to 0.85; not below the measured low end (tests/test_collectives.py checks the
    # 8 x H100 ring against nccl-tests)
    "nvlink": (0.77, 0.85),
    # FP8 GEMM kernels alone: cuBLAS reaches ~1,300-1,600 of H100's 1,979 TFLOP/s FP8 peak on large
    # shapes against ~780 of 989 for BF16 (0.66-0.81 vs 0.79 of peak: a ratio of 0.83-1.0); block-
    # scaled MX / NV formats and training shapes lower -> 0.6-1.0
    "fp8_gemm": (0.6, 1.0),
    # CUDA launch gap + tail per kernel: 2-5 us back to back, tens of us with host sync (Nsight)
    "kernel_overhead": (2e-6, 3e-5),
    # host time per launched kernel in eager PyTorch: ~5-10 us of framework dispatch per simple op
    # (H. He, "Making Deep Learning Go Brrrr From First Principles", 2022; a bare cudaLaunchKernel is
    # 2-4 us); Megatron's modules wrap each kernel in Python module calls, autograd nodes, casts and
    # views, which an independent write-up of Megatron-LM's CUDA graphs puts at 5-50 us per launch;
    # 50 us is taken as the upper bound (an assumption at the top of that range)
    "host_launch": (3e-6, 5e-5),
}
