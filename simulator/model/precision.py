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

