"""Model FLOPs per token (the MFU numerator) and the extra FLOPs of activation recomputation.

Convention (stated because published MFUs differ on it): matmul FLOPs are 2 per weight per token
forward and 4 backward (6N); attention scores and values count the full s x s product, not the
causal half (PaLM, Chowdhery et al. 2022, App. B; Megatron-LM's num_floating_point_operations).
Embedding lookups, norms and element-wise ops are not counted.
"""
from __future__ import annotations

from simulator.model.arch import Arch


def matmul_weights_per_token(a: Arch) -> float:
    """Weights that each token multiplies through (MoE: top-k experts), incl. the output projection."""
    attn = a.hidden * (a.attn_width + 2 * a.kv_width) + a.attn_width * a.hidden
    dense_mlp = (3 if a.gated else 2) * a.hidden * a.ffn
    moe_mlp = (a.topk * (3 if a.gated else 2) * a.hidden * a.moe_ffn + a.hidden * a.num_experts
               + (3 if a.gated else 2) * a.hidden * a.shared_expert_ffn) if a.is_moe else 0
    n_moe = a.num_moe_layers
    layers = (a.num_layers - n_moe) * (attn + dense_mlp) + n_moe * (attn + moe_mlp)
    return float(layers + a.vocab * a.hidden)


def attention_fwd_flops_per_token(a: Arch) -> float:
    """QK^T and AV over the full sequence: 2 matmuls x 2 FLOPs x s x heads x kv_channels, all layers."""
    return 4.0 * a.num_layers * a.seq * a.attn_width


def model_flops_per_token(a: Arch) -> float:
    """Forward + backward model FLOPs per token (no recomputation)."""
    return 6.0 * matmul_weights_per_token(a) + 3.0 * attention_fwd_flops_per_token(a)


def recompute_flops_per_token(a: Arch, granularity: str) -> float:
    """Extra forward FLOPs per token spent recomputing activations in the backward pass."""
    if granularity == "full":
        layer_weights = matmul_weights_per_token(a) - a.vocab * a.hidden
        return 2.0 * layer_weights + attention_fwd_flops_per_token(a)
    if granularity == "selective":
        # Megatron-LM checkpoints the core-attention module, flash kernel or not
        return attention_fwd_flops_per_token(a)
    return 0.0
