"""Training precisions by the names frameworks print, and the tensor-core format each runs in.

Megatron-Bridge / NeMo recipes name their low-precision recipes ``fp8_cs`` (per-tensor current
scaling), ``fp8_ds`` (delayed scaling), ``fp8_mx`` (MXFP8: 32-element blocks with an E8M0 scale,
Blackwell) and ``nvfp4`` (NVFP4: 16-element blocks, E4M3 scales, Blackwell); ``mxfp4`` is the OCP
MX FP4 format (MI355X). ``fp8`` is the generic name trainsim has always used (= per-tensor FP8).
Under every one of them only the transformer blocks' linear layers run in the low-precision format
(Transformer Engine's recipes); attention, the router and the output layer stay BF16.
"""
from __future__ import annotations

# training.precision -> the catalog's peak_flops key that its linear-layer GEMMs run at
TENSOR_FORMAT = {
    "bf16": "bf16", "fp16": "fp16",
    "fp8": "fp8", "fp8_cs": "fp8", "fp8_ds": "fp8",
    "fp8_mx": "mxfp8",
    "nvfp4": "nvfp4", "mxfp4": "mxfp4",
}

def tensor_format(precision: str) -> str:
    return TENSOR_FORMAT[precision]


def is_low_precision(precision: str) -> bool:
    """True when the linear layers run below 16 bits (FP8 or FP4 families)."""
    return TENSOR_FORMAT[precision] not in ("bf16", "fp16")



class Quantization:
    """What Transformer Engine's recipe for a precision writes and reads to quantize one bf16 tensor
    for the low-precision GEMMs (both orientations: the forward / dgrad GEMM reads it row-wise, the
    wgrad GEMM column-wise, so a quantized tensor is written twice, except per-tensor FP8 on GPUs
    whose FP8 GEMMs take any layout).

    ``payload``: bytes per element of the quantized data; ``scale``: bytes of block scale per element
    (MXFP8 / MXFP4: one E8M0 byte per 32 elements; NVFP4: one E4M3 byte per 16); ``amax_pass``: the
    per-tensor scale needs the tensor's absolute maximum before the cast, one more read of the bf16
    source (current scaling; NVFP4's FP32 global scale); delayed scaling takes it from the amax
    history, fused into the cast, and MX block scales are computed inside the cast kernel;
    ``hadamard_pass``: NVFP4 applies a 16 x 16 random Hadamard transform to the wgrad GEMM's inputs
    before quantizing them column-wise, a separate read of the bf16 source (Transformer Engine
    NVFP4BlockScaling recipe; NVIDIA, "Pretraining Large Language Models with NVFP4", 2025)."""

    def __init__(self, payload: float, scale: float = 0.0, amax_pass: bool = False, hadamard_pass: bool = False):
        self.payload, self.scale, self.amax_pass, self.hadamard_pass = payload, scale, amax_pass, hadamard_pass

    @property
    def per_tensor(self) -> bool:
        """One scale for the whole tensor (no block scales)."""
        return self.scale == 0.0

    def bytes_per_element(self, any_layout: bool = False) -> float:
        """HBM bytes per element of the bf16 source: read it (again for the amax and the Hadamard
        pass), write both orientations with their scales. With ``any_layout`` (Blackwell: FP8 GEMMs
        take non-TN operands) a per-tensor FP8 tensor is written once and serves both GEMMs
        (Transformer Engine allocates no transpose there: tensor/float8_tensor.py @ d0067d0d); block
        formats scale along the GEMM's reduction axis, so their column-wise copy is a separate
        quantization on every GPU."""
        reads = 2.0 * (1 + self.amax_pass + self.hadamard_pass)
        copies = 1 if (any_layout and self.per_tensor) else 2
        return reads + copies * (self.payload + self.scale)


# training.precision -> its quantization (Transformer Engine recipes, as Megatron-Bridge / NeMo name them)
QUANTIZATION = {
    "fp8": Quantization(1.0),                       # per-tensor delayed scaling (TE's DelayedScaling default)
    "fp8_ds": Quantization(1.0),
    "fp8_cs": Quantization(1.0, amax_pass=True),    # per-tensor current scaling (Float8CurrentScaling)
    "fp8_mx": Quantization(1.0, 1.0 / 32),          # MXFP8BlockScaling: 1 x 32 blocks, E8M0 scales
    "nvfp4": Quantization(0.5, 1.0 / 16, amax_pass=True, hadamard_pass=True),   # NVFP4BlockScaling
    "mxfp4": Quantization(0.5, 1.0 / 32),           # OCP MXFP4 (MI355X)
}


def quantization(precision: str) -> Quantization | None:
    """The recipe's quantization, or None for bf16 / fp16 training (no casts)."""
    return QUANTIZATION.get(precision)
