"""Parameter counts of a decoder-only transformer (dense or MoE), from its architecture alone."""
from __future__ import annotations

from dataclasses import dataclass

from simulator.model.arch import Arch


def attention_matmul_weights(a: Arch) -> int:
    """Weights of one layer's attention projections (what each token multiplies through).

    Standard / grouped-query attention: Q, K, V and the output projection. Multi-head latent
    attention (DeepSeek-V2/V3): the query goes through a low-rank pair h -> q_lora_rank -> heads x
    (nope + rope) (or one h -> heads x (nope + rope) matrix without q_lora_rank); keys and values
    share a compressed latent h -> kv_lora_rank (+ one shared rotary key of qk_rope_head_dim), which
    kv_lora_rank -> heads x (nope + v_head_dim) expands; then heads x v_head_dim -> h.
    """
    h, H = a.hidden, a.heads
    if a.mla:
        q = h * a.q_lora_rank + a.q_lora_rank * a.q_width if a.q_lora_rank else h * a.q_width
        kv = h * (a.kv_lora_rank + a.qk_rope_dim) + a.kv_lora_rank * H * (a.qk_nope_dim + a.v_dim)
        return q + kv + a.attn_width * h
    return h * (a.attn_width + 2 * a.kv_width) + a.attn_width * h


def attention_params(a: Arch) -> int:
    proj = a.hidden * a.linear_bias
    if a.mla:   # norms on the two latents (DeepSeek q_a_layernorm, kv_a_layernorm)
        extra = (a.q_lora_rank + a.kv_lora_rank) * (2 if a.layernorm else 1)
        return attention_matmul_weights(a) + proj + extra
    qkv_bias = (a.attn_width + 2 * a.kv_width) * a.qkv_bias
    extra = 2 * a.kv_channels * a.qk_layernorm + a.heads * a.attention_sinks
    return attention_matmul_weights(a) + qkv_bias + proj + extra


def mlp_params(a: Arch, ffn: int) -> int:
    """One MLP (or one expert): up (and gate) projection, down projection, their biases."""
    if ffn == 0:
        return 0
    up = (2 if a.gated else 1) * ffn
    return a.hidden * up + ffn * a.hidden + (up + a.hidden) * a.linear_bias


def norm_params(a: Arch) -> int:
    return a.hidden * (2 if a.layernorm else 1)


def dense_layer_params(a: Arch) -> int:
    return attention_params(a) + mlp_params(a, a.ffn) + 2 * norm_params(a)


def moe_layer_params(a: Arch) -> tuple[int, int]:
    """(parameters outside the routed experts, parameters of all routed experts) of one MoE layer."""
    shared = attention_params(a) + 2 * norm_params(a) + a.hidden * a.num_experts  # + router
    shared += mlp_params(a, a.shared_expert_ffn)
    return shared, a.num_experts * mlp_params(a, a.moe_ffn)


def mtp_params(a: Arch) -> tuple[int, int]:
    """(parameters outside routed experts, routed-expert parameters) of the multi-token prediction
    modules (DeepSeek-V3 Sec. 2.2): per module two input norms, a 2h x h projection of the
    concatenated [hidden; next-token embedding], one transformer layer (MoE when the model's last
    layer is), and a final norm; the embedding and output head are shared with the main model."""
    if not a.mtp_layers:
        return 0, 0
    shared, experts = moe_layer_params(a) if a.last_layer_moe else (dense_layer_params(a), 0)
    per = shared + 3 * norm_params(a) + 2 * a.hidden * a.hidden
    return a.mtp_layers * per, a.mtp_layers * experts


def tensors_per_layer(a: Arch) -> int:
    """Separate parameter tensors in one dense layer (weights, biases, norm scales and shifts)."""
    linear = 4 * (1 + a.linear_bias) + (a.qkv_bias and not a.linear_bias) - (a.linear_bias and not a.qkv_bias)
    return linear + 2 * (2 if a.layernorm else 1)


def embedding_params(a: Arch) -> int:
    """Input embedding, learned positions, embedding norm."""
    return a.vocab * a.hidden + a.seq * a.hidden * a.learned_positions + norm_params(a) * a.embedding_norm


def output_params(a: Arch) -> int:
    """Final norm plus the output projection when it is not tied to the input embedding."""
    return norm_params(a) + (0 if a.tied_embeddings else a.vocab * a.hidden)


@dataclass(frozen=True)
class ParamCount:
    total: int           # main model (published totals leave multi-token prediction modules out)
    active: int          # used per token (MoE: top-k experts only)
    embedding: int       # input embedding + output projection
    per_dense_layer: int
    per_moe_layer_shared: int
    per_moe_layer_experts: int
    mtp: int = 0         # multi-token prediction modules (all their experts), on top of total


def count(a: Arch) -> ParamCount:
    n_moe = a.num_moe_layers
    n_dense = a.num_layers - n_moe
    shared, experts = moe_layer_params(a) if a.is_moe else (0, 0)
    active_experts = a.topk * mlp_params(a, a.moe_ffn) if a.is_moe else 0
    outer = embedding_params(a) + output_params(a)
    total = n_dense * dense_layer_params(a) + n_moe * (shared + experts) + outer
    active = n_dense * dense_layer_params(a) + n_moe * (shared + active_experts) + outer
    emb = a.vocab * a.hidden * (1 if a.tied_embeddings else 2)
    return ParamCount(total, active, emb, dense_layer_params(a), shared, experts, sum(mtp_params(a)))
