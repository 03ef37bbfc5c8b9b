"""Model FLOPs per token (the MFU numerator) and the extra FLOPs of activation recomputation.

Convention (stated because published MFUs differ on it): matmul FLOPs are 2 per weight per token
forward and 4 backward (6N); attention scores and values count the full s x s product, not the
causal half (PaLM, Chowdhery et al. 2022, App. B; Megatron-LM's num_floating_point_operations).
A sliding-window layer counts s x min(w, s) instead. Multi-token prediction modules count like
layers, plus their own pass through the output projection. Embedding lookups, norms and
element-wise ops are not counted.
"""
from __future__ import annotations

from simulator.model.arch import Arch
from simulator.model.params import attention_matmul_weights


def _mlp_weights(a: Arch, moe: bool) -> float:
    g = 3 if a.gated else 2
    if not moe:
        return float(g * a.hidden * a.ffn)
    return float(a.topk * g * a.hidden * a.moe_ffn + a.hidden * a.num_experts + g * a.hidden * a.shared_expert_ffn)


def matmul_weights_per_token(a: Arch) -> float:
    """Weights that each token multiplies through (MoE: top-k experts), incl. the output projection
    and the multi-token prediction modules."""
    attn = attention_matmul_weights(a)
    n_moe = a.num_moe_layers
    layers = (a.num_layers - n_moe) * (attn + _mlp_weights(a, False)) + n_moe * (attn + _mlp_weights(a, True))
    mtp = a.mtp_layers * (2 * a.hidden * a.hidden + attn + _mlp_weights(a, a.last_layer_moe) + a.vocab * a.hidden)
    return float(layers + mtp + a.vocab * a.hidden)


def attention_fwd_flops_per_token(a: Arch) -> float:
    """QK^T and AV over the (windowed) sequence, all layers and MTP modules:
    2 FLOPs x keys x heads x (qk head dim + v head dim)."""
    per_layer = 2.0 * a.seq * a.heads * (a.qk_head_dim + a.v_head_dim)
    return per_layer * (a.num_layers * a.mean_keys_fraction + a.mtp_layers * a.window(a.num_layers - 1) / a.seq)


def model_flops_per_token(a: Arch) -> float:
    """Forward + backward model FLOPs per token (no recomputation)."""
    return 6.0 * matmul_weights_per_token(a) + 3.0 * attention_fwd_flops_per_token(a)


def recompute_flops_per_token(a: Arch, granularity: str, modules: tuple[str, ...] = ()) -> float:
    """Extra forward FLOPs per token spent recomputing activations in the backward pass. Selective
    recomputation reruns Megatron-Core's ``modules`` (default the core attention; norms and
    activations are not counted, as in the MFU convention)."""
    if granularity == "full":
        layer_weights = matmul_weights_per_token(a) - a.vocab * a.hidden * (1 + a.mtp_layers)
        return 2.0 * layer_weights + attention_fwd_flops_per_token(a)
    if granularity != "selective":
        return 0.0
    mods = modules or ("core_attn",)
    flops = attention_fwd_flops_per_token(a) if "core_attn" in mods else 0.0
    n_moe, n_dense = a.num_moe_layers, a.num_layers - a.num_moe_layers
    if "mla_up_proj" in mods and a.mla:
        q_in = a.q_lora_rank or a.hidden   # without q_lora_rank the query's one projection reruns
        flops += 2.0 * a.num_layers * (q_in * a.q_width + a.kv_lora_rank * a.heads * (a.qk_nope_dim + a.v_dim))
    if "mlp" in mods:
        flops += 2.0 * n_dense * _mlp_weights(a, False)
    if "moe" in mods:
        flops += 2.0 * n_moe * _mlp_weights(a, True)
    elif "shared_experts" in mods:
        flops += 2.0 * n_moe * (3 if a.gated else 2) * a.hidden * a.shared_expert_ffn
    return flops
