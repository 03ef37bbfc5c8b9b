"""Schema of a GPU description: the catalog's entries and an inline `gpu:` table share it."""
from __future__ import annotations

from functools import lru_cache

from pydantic import Field, model_validator

from simulator.config.types import Bandwidth, Flops, Fraction, Label, Power, Size, Strict
from simulator.model.precision import TENSOR_FORMAT


class PeakFlops(Strict):
    """Dense peak FLOP/s per data type (no structured sparsity)."""

    fp32: Flops | None = None
    tf32: Flops | None = None
    fp16: Flops | None = None
    bf16: Flops | None = None
    fp8: Flops | None = None
    mxfp8: Flops | None = None      # OCP MX FP8 (32-element blocks, E8M0 scales): Blackwell, MI355X
    nvfp4: Flops | None = None      # NVIDIA NVFP4 (16-element blocks, E4M3 scales): Blackwell
    mxfp4: Flops | None = None      # OCP MX FP4: Blackwell, MI355X


class GPUSpec(Strict):
    name: Label
    vendor: str = "nvidia"
    peak_flops: PeakFlops
    # Best measured dense matmul throughput as a fraction of the bf16/fp16 peak: the ceiling an
    # efficiency model must not exceed (e.g. Bekman, ml-engineering "maximum achievable matmul FLOPS").
    max_gemm_fraction: Fraction = Field(default=0.8, ge=0.05)   # measured: 0.51 (MI300X) to 0.97
    hbm_capacity: Size
    # what the CUDA runtime exposes (nvidia-smi "Total"); default: hbm_capacity
    hbm_usable: Size | None = None
    hbm_bandwidth: Bandwidth
    tdp: Power
    idle_power: Power
    nvlink_bandwidth: Bandwidth | None = Field(default=None, description="per GPU, per direction")
    # GPU <-> host memory link per direction (PCIe or NVLink-C2C): activation CPU offloading
    host_bandwidth: Bandwidth = "32 GB/s"
    # 2:4 structured sparsity skips half the multiplies: a speed-up of 1 (none) to 2 (all of it)
    sparsity_2to4_speedup: float = Field(default=1.0, ge=1.0, le=2.0)
    # streaming multiprocessors (AMD: compute units): GEMM tiles run in waves of this many
    # (cost/compute.py); null = no wave quantisation. At most 4,096: shipping parts have 108-304
    # (A100 108, B200 148, MI300X 304); a far larger count only makes every GEMM one thin wave
    sm_count: int | None = Field(default=None, ge=1, le=4096)
    # exponentials per second the special-function units (MUFU.EX2) issue, the whole GPU: flash
    # attention's softmax pays one per score it computes, forward and backward (cost/compute.py);
    # null = not published, the softmax is costed by its matmuls alone
    sfu_exp_rate: float | None = Field(default=None, gt=0)
    # CUDA compute capability (8.0 A100, 9.0 Hopper, 10.0 B200/GB200, 10.3 B300/GB300); null for
    # other vendors. Blackwell's FP8 GEMMs take any operand layout, so per-tensor FP8 keeps no
    # transposed copy there (cost/compute.quantize_ops)
    compute_capability: float | None = Field(default=None, gt=0)
    source: str = ""

    @model_validator(mode="after")
    def _physical(self) -> "GPUSpec":
        if self.peak_flops.bf16 is None and self.peak_flops.fp16 is None:
            raise ValueError("peak_flops needs a bf16 or fp16 peak: every training precision's GEMM rate and "
                             "MFU are counted against it")
        if self.tdp <= 0:
            raise ValueError("tdp must be above 0 W (a GPU that draws nothing would make every run's energy 0)")
        if self.idle_power > self.tdp:
            raise ValueError(f"idle_power ({self.idle_power:g} W) exceeds tdp ({self.tdp:g} W); a GPU idles "
                             "below its thermal design power")
        if self.hbm_usable is not None and self.hbm_usable > self.hbm_capacity:
            raise ValueError(f"hbm_usable ({self.hbm_usable / 2**30:g} GiB) exceeds hbm_capacity "
                             f"({self.hbm_capacity / 2**30:g} GiB); the runtime exposes at most the memory fitted")
        return self

    @property
    def usable_hbm(self) -> float:
        """Bytes of HBM a training process can allocate from (ECC and driver reservations excluded)."""
        return self.hbm_usable if self.hbm_usable is not None else self.hbm_capacity

    def peak(self, precision: str) -> float | None:
        """Peak dense FLOP/s for a training precision (a recipe name such as fp8_cs maps to the tensor
        format it runs in, simulator/model/precision.py); fp16 and bf16 fall back on each other."""
        p = self.peak_flops
        precision = TENSOR_FORMAT.get(precision, precision)
        if precision in ("fp8", "mxfp8", "nvfp4", "mxfp4"):
            return getattr(p, precision)
        if precision == "fp16":   # the same tensor-core rate on GPUs; a TPU's MXU has no fp16 at all
            return p.fp16 or (p.bf16 if self.vendor != "google" else None)
        if precision == "bf16":
            return p.bf16 or p.fp16
        return getattr(p, precision, None)

    @property
    def fp8_any_layout(self) -> bool:
        """cuBLAS FP8 GEMMs accept non-TN operand layouts (Transformer Engine's
        is_non_tn_fp8_gemm_supported: compute capability 10.x-11.x or 13+), so a per-tensor FP8 tensor
        serves the wgrad GEMM without a transposed copy."""
        cc = self.compute_capability
        return cc is not None and (10.0 <= cc < 12.0 or cc >= 13.0)

    def precisions(self) -> list[str]:
        """The training.precision names this GPU has tensor-core peaks for."""
        return [name for name in TENSOR_FORMAT if self.peak(name) is not None]

@lru_cache(maxsize=None)
def catalog_gpu(name: str) -> GPUSpec:
    """The catalog entry ``name`` validated (simulator/catalog/gpus.yaml); KeyError if there is none."""
    from pydantic import ValidationError

    from simulator import catalog

    try:
        return GPUSpec.model_validate(catalog.entry(name))
    except ValidationError as exc:  # the shipped catalog is broken: a bug, not user input
        raise RuntimeError(f"catalog entry {name!r} is invalid: {exc}") from exc
