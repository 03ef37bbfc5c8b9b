"""A transformer architecture with every default resolved (the model maths reads only this)."""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

from simulator.memo import by_identity

if TYPE_CHECKING:        # annotations only: config validates with the model, not the reverse
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
    # per layer: True = MoE layer (empty: the moe_layer_freq period rule)
    moe_pattern: tuple[bool, ...] = ()
    grouped_gemm: bool = True
    fused_grouped_mlp: bool = False   # model.moe.moe_fused_grouped_mlp (model/moe_ops.py)
    load_imbalance: float = 1.0     # busiest EP rank's tokens / mean, applied when EP > 1
    deepep: bool = False            # DeepEP-style dispatch: one copy per remote domain (flex dispatcher)
    router_num_groups: int = 0      # group-limited routing: expert groups, groups a token may use
    router_group_topk: int = 0
    qk_layernorm: bool = False
    # multi-head latent attention (kv_lora_rank = 0: standard attention)
    q_lora_rank: int = 0
    kv_lora_rank: int = 0
    qk_nope_dim: int = 0
    qk_rope_dim: int = 0
    v_dim: int = 0
    # per layer: keys each query attends (0 = the whole causal prefix); empty = all full
    windows: tuple[int, ...] = ()
    attention_sinks: bool = False
    mtp_layers: int = 0
    # per layer: chunked-attention chunk length (0 = not chunked); empty = no chunked layer
    chunks: tuple[int, ...] = ()

    # ---- attention shapes -------------------------------------------------------------------
    @property
    def mla(self) -> bool:
        return self.kv_lora_rank > 0

    @property
    def qk_head_dim(self) -> int:
        """Width of one head's query and key (MLA: the no-position part plus the rotary part)."""
        return self.qk_nope_dim + self.qk_rope_dim if self.mla else self.kv_channels

    @property
    def v_head_dim(self) -> int:
        return self.v_dim if self.mla else self.kv_channels
    attention_dropout: float = 0.0
    hidden_dropout: float = 0.0
    bias_dropout_fusion: bool = True
    act_clamp: bool = False    # activation_func_clamp_value set: eager clamp kernels before a gated activation
    rope_unfused: bool = False  # RoPE through Megatron-Core's unfused PyTorch path (YaRN concentration != 1)
    rope: bool = False          # rotary position embeddings (position_embedding_type rope)

    @property
    def attn_width(self) -> int:
        """Width of the concatenated attention outputs, the output projection's input."""
        return self.heads * self.v_head_dim

    @property
    def q_width(self) -> int:
        return self.heads * self.qk_head_dim

    @property
    def kv_width(self) -> int:
        """Width of the keys of one token (standard attention: = the values' width)."""
        return self.heads * self.qk_head_dim if self.mla else self.query_groups * self.kv_channels

    @property
    def v_width(self) -> int:
        return self.heads * self.v_dim if self.mla else self.query_groups * self.kv_channels

    @property
    def kv_exchange_width(self) -> int:
        """Elements per token of the keys and values that context parallelism passes around the ring."""
        return self.kv_width + self.v_width

    # ---- layer patterns ---------------------------------------------------------------------
    @property
    def is_moe(self) -> bool:
        return self.num_experts > 0

    @property
    def num_moe_layers(self) -> int:
        if not self.is_moe:
            return 0
        if self.moe_pattern:
            return sum(self.moe_pattern)
        # Megatron-LM: layer i is an MoE layer when i % moe_layer_freq == 0
        return -(-self.num_layers // self.moe_layer_freq)

    def is_moe_layer(self, layer: int) -> bool:
        """Whether model layer ``layer`` (0-based) is an MoE layer."""
        if not self.is_moe:
            return False
        if self.moe_pattern:
            return self.moe_pattern[layer]
        return layer % self.moe_layer_freq == 0

    def moe_layers_among(self, ids) -> int:
        """MoE layers among the model layers ``ids`` (those a pipeline stage holds)."""
        return sum(1 for i in ids if self.is_moe_layer(i)) if self.is_moe else 0

    def moe_layers_in(self, layers: int) -> float:
        """MoE layers among ``layers`` of a pipeline stage, at the model's average share (the shares
        of all stages add up to num_moe_layers)."""
        return layers * self.num_moe_layers / self.num_layers if self.is_moe else 0.0

    @property
    def last_layer_moe(self) -> bool:
        """Whether the last layer is an MoE layer (multi-token prediction modules copy its kind)."""
        if not self.is_moe:
            return False
        if self.moe_pattern:
            return self.moe_pattern[-1]
        return (self.num_layers - 1) % self.moe_layer_freq == 0

    def window(self, layer: int) -> int:
        """Keys a query of ``layer`` attends at most (the sequence length for full attention; a
        chunked layer: its chunk)."""
        w = self.windows[layer] if self.windows else 0
        c = self.chunks[layer] if self.chunks else 0
        w = min(x for x in (w, c) if x) if (w or c) else 0
        return min(w, self.seq) if w else self.seq

    @cached_property
    def mean_causal_keys_fraction(self) -> float:
        """Mean over layers of the causal (query, key) pairs a layer computes, relative to a full
        causal layer's s^2 / 2: a window w < s keeps w*s - w^2/2 of them; chunks of c tokens keep
        c^2/2 per whole chunk plus r^2/2 for a last partial chunk of r."""
        s = self.seq
        tot = 0.0
        for i in range(self.num_layers):
            c = self.chunks[i] if self.chunks else 0
            if c and c < s:
                whole, r = divmod(s, c)
                tot += (whole * c * c + r * r) / (s * s)
                continue
            w = self.window(i)
            tot += (w * s - w * w / 2.0) / (s * s / 2.0)
        return tot / self.num_layers

    @cached_property
    def mean_keys_fraction(self) -> float:
        """Mean over layers of min(window, s) / s: the MFU convention's s x s product shrinks to s x w."""
        return sum(self.window(i) for i in range(self.num_layers)) / (self.num_layers * self.seq)


def moe_layer_pattern(m: ModelConfig) -> tuple[bool, ...]:
    """Per layer, whether it is an MoE layer: moe_layer_freq (a list, or a period) with the first
    first_k_dense_replace layers dense; () for a dense model, or when the period alone places them."""
    moe = m.moe
    if moe is None:
        return ()
    freq, k = moe.moe_layer_freq, moe.first_k_dense_replace
    if isinstance(freq, list):
        pattern = [bool(x) for x in freq]
    elif k == 0:
        return ()
    else:
        pattern = [i % freq == 0 for i in range(m.num_layers)]
    return tuple(False if i < k else p for i, p in enumerate(pattern))


def _windows(m: ModelConfig) -> tuple[int, ...]:
    w = m.sliding_window
    if w is None:
        return ()
    if m.layer_types is not None:
        return tuple(w if t == "sliding_attention" else 0 for t in m.layer_types)
    n = m.window_attn_skip_freq
    return tuple(0 if (n and (i + 1) % n == 0) else w for i in range(m.num_layers))


def _chunks(m: ModelConfig) -> tuple[int, ...]:
    c, n = m.attention_chunk_size, m.nope_layer_interval
    if c is None:
        return ()
    return tuple(0 if (n and (i + 1) % n == 0) else c for i in range(m.num_layers))


def _yarn_mscale(scale: float, mscale: float = 1.0) -> float:
    return 1.0 if scale <= 1.0 else 0.1 * mscale * math.log(scale) + 1.0


def yarn_concentration(scale: float, mscale: float | None, mscale_all_dim: float | None) -> float:
    """YaRN's attention factor, the multiplier on RoPE's cosines and sines, as Megatron-Core computes
    it (``_yarn_get_concentration_factor``, megatron/core/models/common/embeddings/
    yarn_rotary_pos_embedding.py @ b0cc2706, the Megatron-LM that Megatron-Bridge v0.3.0 pins):
    0.1 * mscale * ln(scale) + 1 over the same with mscale_all_dim, or 0.1 * ln(scale) + 1 when either
    exponent is unset (GPT-OSS: scale 32, both unset: 1.3466)."""
    if mscale is None or mscale_all_dim is None:
        return _yarn_mscale(scale)
    return _yarn_mscale(scale, mscale) / _yarn_mscale(scale, mscale_all_dim)


@by_identity()   # a frozen ModelConfig always resolves to the same Arch
def resolve(m: ModelConfig) -> Arch:
    moe, mla = m.moe, m.multi_latent_attention
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
        moe_layer_freq=moe.moe_layer_freq if moe and isinstance(moe.moe_layer_freq, int) else 1,
        shared_expert_ffn=(moe.moe_shared_expert_intermediate_size or 0) if moe else 0,
        moe_pattern=moe_layer_pattern(m),
        grouped_gemm=moe.moe_grouped_gemm if moe else True,
        fused_grouped_mlp=bool(moe) and moe.moe_fused_grouped_mlp,
        load_imbalance=(1.0 if moe.moe_router_force_load_balancing else moe.moe_expert_load_imbalance)
        if moe else 1.0,
        deepep=bool(moe) and moe.moe_token_dispatcher_type == "flex",
        router_num_groups=(moe.moe_router_num_groups or 0) if moe else 0,
        router_group_topk=(moe.moe_router_group_topk or 0) if moe else 0,
        qk_layernorm=m.qk_layernorm,
        q_lora_rank=(mla.q_lora_rank or 0) if mla else 0,
        kv_lora_rank=mla.kv_lora_rank if mla else 0,
        qk_nope_dim=mla.qk_nope_head_dim if mla else 0,
        qk_rope_dim=mla.qk_rope_head_dim if mla else 0,
        v_dim=mla.v_head_dim if mla else 0,
        windows=_windows(m),
        chunks=_chunks(m),
        attention_sinks=m.softmax_type == "learnable",
        mtp_layers=m.mtp_num_layers,
        attention_dropout=m.attention_dropout,
        hidden_dropout=m.hidden_dropout,
        bias_dropout_fusion=m.bias_dropout_fusion,
        act_clamp=m.activation_func_clamp_value is not None and m.activation == "swiglu",
        rope=m.position_embedding_type == "rope",
        rope_unfused=(m.position_embedding_type == "rope" and mla is None and m.yarn_rotary_scaling_factor is not None
                      and yarn_concentration(m.yarn_rotary_scaling_factor, m.yarn_mscale,
                                             m.yarn_mscale_all_dim) != 1.0),
    )
