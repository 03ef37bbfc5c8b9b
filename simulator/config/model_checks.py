"""Cross-key checks of a workload's model features: MLA, MoE layer patterns, windows, MTP, and the
fused kernels (FP8 attention, the fused grouped MLP) against the precision and GPU.

Each failed check is a ConfigError naming where the value came from, the key path, the value and
what would be valid (the same contract as simulator/config/layout.py, which calls these).
"""
from __future__ import annotations

from simulator.config.loader import fail as _fail   # the key's source, with a file key's overrides
from simulator.config.workload import ModelConfig
from simulator.model.arch import moe_layer_pattern
from simulator.model.precision import is_low_precision


def check_model_features(m: ModelConfig, where) -> None:
    L = m.num_layers
    moe = m.moe
    if moe is not None:
        if isinstance(moe.moe_layer_freq, list):
            if len(moe.moe_layer_freq) != L:
                _fail(where, "model.moe.moe_layer_freq", f"the layer pattern has {len(moe.moe_layer_freq)} "
                      f"entries for num_layers={L}", f"a list of {len(moe.moe_layer_freq)}",
                      f"one 0/1 entry per layer ({L} entries), or an int period")
            if not any(moe.moe_layer_freq):
                _fail(where, "model.moe.moe_layer_freq", "the layer pattern has no MoE layer", moe.moe_layer_freq,
                      "at least one 1, or leave out model.moe for a dense model")
        if moe.first_k_dense_replace >= L:
            _fail(where, "model.moe.first_k_dense_replace", f"leaves no MoE layer of num_layers={L}",
                  moe.first_k_dense_replace, f"fewer than {L}")
        k, freq = moe.first_k_dense_replace, moe.moe_layer_freq
        if k and not any(moe_layer_pattern(m)):   # the pattern's MoE layers all among the first k dense ones
            _fail(where, "model.moe.first_k_dense_replace", f"makes the first {k} layers dense, and the layer "
                  f"pattern (moe_layer_freq {freq if not isinstance(freq, list) else 'list'}) has no MoE layer "
                  "after them: the model would run as a dense one", k,
                  "a pattern with an MoE layer after the first k, a smaller first_k_dense_replace, or no model.moe")
        if moe.moe_router_force_load_balancing and moe.moe_expert_load_imbalance != 1.0:
            _fail(where, "model.moe.moe_expert_load_imbalance", "conflicts with moe_router_force_load_balancing: "
                  "true (forced routing is balanced)", moe.moe_expert_load_imbalance, "1.0, or leave it out")
        if (moe.moe_router_num_groups is None) != (moe.moe_router_group_topk is None):
            key = "moe_router_group_topk" if moe.moe_router_group_topk is None else "moe_router_num_groups"
            _fail(where, f"model.moe.{key}", "group-limited routing needs both moe_router_num_groups and "
                  "moe_router_group_topk", None, "both keys, or neither")
        if moe.moe_router_num_groups is not None:
            if moe.num_experts % moe.moe_router_num_groups:
                _fail(where, "model.moe.moe_router_num_groups", f"does not divide num_experts={moe.num_experts}",
                      moe.moe_router_num_groups, "a divisor of num_experts")
            if moe.moe_router_group_topk > moe.moe_router_num_groups:
                _fail(where, "model.moe.moe_router_group_topk", f"exceeds moe_router_num_groups="
                      f"{moe.moe_router_num_groups}", moe.moe_router_group_topk, "at most the number of groups")
        if moe.moe_expert_load_imbalance < 1.0:
            _fail(where, "model.moe.moe_expert_load_imbalance", "the busiest rank cannot hold fewer tokens "
                  "than the mean", moe.moe_expert_load_imbalance, "a ratio >= 1.0")
        if moe.moe_expert_load_imbalance > moe.num_experts:
            _fail(where, "model.moe.moe_expert_load_imbalance", f"exceeds num_experts={moe.num_experts}: "
                  "the busiest rank holds at most every routed token, its EP size times the mean",
                  moe.moe_expert_load_imbalance, f"a ratio from 1.0 to at most {moe.num_experts}")
    mla = m.multi_latent_attention
    if mla is not None:
        if m.kv_channels is not None or m.num_query_groups is not None:
            key = "kv_channels" if m.kv_channels is not None else "num_query_groups"
            _fail(where, f"model.{key}", "multi-head latent attention sets the head shapes itself "
                  "(qk_nope_head_dim, qk_rope_head_dim, v_head_dim)", getattr(m, key),
                  "leave it out with multi_latent_attention")
        if m.qk_layernorm:
            _fail(where, "model.qk_layernorm", "multi-head latent attention normalises its latents instead",
                  m.qk_layernorm, "false with multi_latent_attention")
    yarn = {k: getattr(m, k) for k in ("yarn_rotary_scaling_factor", "yarn_mscale", "yarn_mscale_all_dim")
            if getattr(m, k) is not None}
    if yarn and m.position_embedding_type != "rope":
        key = next(iter(yarn))
        _fail(where, f"model.{key}", "YaRN scales rotary embeddings, but position_embedding_type is "
              f"{m.position_embedding_type!r}", yarn[key], "position_embedding_type: rope")
    if m.yarn_rotary_scaling_factor is not None and m.yarn_rotary_scaling_factor < 1.0:
        _fail(where, "model.yarn_rotary_scaling_factor", "YaRN stretches the rotary frequencies to a longer "
              "context (factor = target / original context length); below 1 its attention factor turns "
              "negative", m.yarn_rotary_scaling_factor, "a factor >= 1 (GPT-OSS: 32, DeepSeek-V3: 40)")
    if m.multi_latent_attention is not None and m.position_embedding_type != "rope":
        _fail(where, "model.position_embedding_type", "multi-head latent attention carries a rotary key "
              "(qk_rope_head_dim)", m.position_embedding_type, "rope with multi_latent_attention")
    if yarn and m.yarn_rotary_scaling_factor is None:
        key = next(iter(yarn))
        _fail(where, f"model.{key}", "a YaRN attention factor needs the scaling factor", yarn[key],
              "model.yarn_rotary_scaling_factor as well")
    if m.sliding_window is not None and m.sliding_window > m.seq_length:
        _fail(where, "model.sliding_window", f"is larger than seq_length={m.seq_length}", m.sliding_window,
              f"at most {m.seq_length} (a window as long as the sequence is full attention)")
    if m.sliding_window is None:
        for key in ("window_attn_skip_freq", "layer_types"):
            if getattr(m, key) is not None:
                _fail(where, f"model.{key}", "says which layers use a sliding window, but no window is set",
                      getattr(m, key), "model.sliding_window as well")
    if m.window_attn_skip_freq is not None and m.layer_types is not None:
        _fail(where, "model.layer_types", "give window_attn_skip_freq or layer_types, not both",
              "a list", "only one of the two")
    if m.layer_types is not None and len(m.layer_types) != L:
        _fail(where, "model.layer_types", f"has {len(m.layer_types)} entries for num_layers={L}",
              f"a list of {len(m.layer_types)}", f"one entry per layer ({L} entries)")
    if m.window_attn_skip_freq is not None and m.window_attn_skip_freq > L:
        _fail(where, "model.window_attn_skip_freq", f"exceeds num_layers={L}: no layer would be full attention",
              m.window_attn_skip_freq, f"at most {L}, or leave it out for all-windowed layers")
    if m.nope_layer_interval is not None and m.attention_chunk_size is None:
        _fail(where, "model.nope_layer_interval", "says which layers attend globally, but no "
              "attention_chunk_size is set", m.nope_layer_interval, "model.attention_chunk_size as well")
    if m.attention_chunk_size is not None and m.sliding_window is not None:
        _fail(where, "model.attention_chunk_size", "give a sliding window or attention chunks, not both",
              m.attention_chunk_size, "only one of sliding_window / attention_chunk_size")


# the block-scaled formats Transformer Engine's fused grouped MLP kernels take (MXFP8 and NVFP4
# quantizers in transformer_engine/pytorch/ops/fused/grouped_mlp.py @ d0067d0d)
FUSED_GROUPED_MLP_PRECISIONS = ("fp8_mx", "nvfp4")


def check_fused_kernels(w, gpu, where) -> None:
    """FP8 attention needs a low-precision recipe and the fused attention kernel; the fused grouped
    MLP needs grouped GEMMs, a gated or squared-ReLU activation, a block-scaled format and a
    Blackwell GPU (its kernels are sm_100 CuTe DSL kernels)."""
    t, m = w.training, w.model
    if t.fp8_attention:
        if not is_low_precision(t.precision):
            _fail(where, "training.fp8_attention", f"FP8 attention runs under a low-precision recipe; "
                  f"training.precision is {t.precision}", t.fp8_attention,
                  "a precision of fp8, fp8_cs, fp8_ds, fp8_mx, nvfp4 or mxfp4, or fp8_attention: false")
        if gpu.peak("fp8") is None:
            _fail(where, "training.fp8_attention", f"the cluster's GPU ({gpu.name}) has no FP8 tensor cores "
                  "(no fp8 peak in its catalog entry)", t.fp8_attention,
                  f"fp8_attention: false on this GPU (its precisions: {', '.join(gpu.precisions())})")
        if not t.use_flash_attn or t.attention_kernel != "fused":
            _fail(where, "training.fp8_attention", "FP8 attention is Transformer Engine's fused attention "
                  "kernel; it needs use_flash_attn: true and attention_kernel: fused", t.fp8_attention,
                  "use_flash_attn: true with attention_kernel: fused, or fp8_attention: false")
    moe = m.moe
    if moe is None or not moe.moe_fused_grouped_mlp:
        return
    key = "model.moe.moe_fused_grouped_mlp"
    if not moe.moe_grouped_gemm:
        _fail(where, key, "the fused grouped MLP fuses the grouped expert GEMMs; moe_grouped_gemm is false",
              True, "moe_grouped_gemm: true, or moe_fused_grouped_mlp: false")
    if m.activation not in ("swiglu", "squared_relu"):
        _fail(where, key, f"Transformer Engine fuses gated (GLU) and squared-ReLU activations; the model's "
              f"is {m.activation}", True, "activation swiglu or squared_relu, or moe_fused_grouped_mlp: false")
    if t.precision not in FUSED_GROUPED_MLP_PRECISIONS or (gpu.compute_capability or 0) < 10.0:
        _fail(where, key, f"Transformer Engine's fused grouped MLP kernels run block-scaled formats "
              f"({', '.join(FUSED_GROUPED_MLP_PRECISIONS)}) on Blackwell GPUs (compute capability 10.x); "
              f"this run is {t.precision} on {gpu.name}", True,
              "precision fp8_mx or nvfp4 on a B200 / B300 / GB200 / GB300, or moe_fused_grouped_mlp: false")
