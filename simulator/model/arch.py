"""A transformer architecture with every default resolved (the model maths reads only this)."""
from __future__ import annotations

from dataclasses import dataclass

from simulator.config.workload import ModelConfig


@dataclass(frozen=True)
class Arch:
    num_layers: int
    hidden: int
    ffn: int
    heads: int
    query_groups: int
    kv_channels: int
    vocab: int
    seq: int
    gated: bool              # SwiGLU-style MLP: three h x ffn matrices instead of two
    layernorm: bool          # LayerNorm has a bias vector; RMSNorm does not
    learned_positions: bool
    tied_embeddings: bool
    linear_bias: bool
    qkv_bias: bool
    embedding_norm: bool
    num_experts: int         # 0 = dense
    topk: int
    moe_ffn: int
    moe_layer_freq: int
    shared_expert_ffn: int
    attention_dropout: float = 0.0
    hidden_dropout: float = 0.0

    @property
    def attn_width(self) -> int:
        """Width of the concatenated query heads (= hidden for standard models)."""
        return self.heads * self.kv_channels

    @property
    def kv_width(self) -> int:
        return self.query_groups * self.kv_channels

    @property
    def is_moe(self) -> bool:
        return self.num_experts > 0

    @property
    def num_moe_layers(self) -> int:
        # Megatron-LM: layer i is an MoE layer when i % moe_layer_freq == 0
        return -(-self.num_layers // self.moe_layer_freq) if self.is_moe else 0

    def moe_layers_in(self, layers: int) -> float:
        """MoE layers among ``layers`` of a pipeline stage, at the model's average share (the shares
        of all stages add up to num_moe_layers)."""
        return layers * self.num_moe_layers / self.num_layers if self.is_moe else 0.0


def resolve(m: ModelConfig) -> Arch:
    moe = m.moe
    return Arch(
        num_layers=m.num_layers,
        hidden=m.hidden_size,
        ffn=m.ffn_hidden_size or 4 * m.hidden_size,
        heads=m.num_attention_heads,
        query_groups=m.num_query_groups or m.num_attention_heads,
        kv_channels=m.kv_channels or m.hidden_size // m.num_attention_heads,
        vocab=m.vocab_size,
        seq=m.seq_length,
        gated=m.activation == "swiglu",
        layernorm=m.normalization == "layernorm",
        learned_positions=m.position_embedding_type == "learned_absolute",
        tied_embeddings=not m.untie_embeddings_and_output_weights,
        linear_bias=m.add_bias_linear,
        qkv_bias=m.add_bias_linear if m.add_qkv_bias is None else m.add_qkv_bias,
        embedding_norm=m.embedding_layernorm,
        num_experts=moe.num_experts if moe else 0,
        topk=moe.moe_router_topk if moe else 0,
        moe_ffn=(moe.moe_ffn_hidden_size or m.ffn_hidden_size or 4 * m.hidden_size) if moe else 0,
        moe_layer_freq=moe.moe_layer_freq if moe else 1,
        shared_expert_ffn=(moe.moe_shared_expert_intermediate_size or 0) if moe else 0,
        attention_dropout=m.attention_dropout,
        hidden_dropout=m.hidden_dropout,
    )
