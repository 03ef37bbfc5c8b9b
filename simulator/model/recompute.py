"""What recomputation reruns in the backward: the layers under Megatron's full-recompute methods,
the ops and saved tensors of Megatron-Core's selective recompute_modules."""
from __future__ import annotations

from simulator.model.arch import Arch
from simulator.model.op import Op


def recomputed_fraction(layout, stage: int | None = None) -> float:
    """Share of a stage's (or, with ``stage=None``, the model's) transformer layers whose forward is
    recomputed under full recomputation: every layer with the uniform method, the first
    ``recompute_num_layers`` of each model chunk with the block method; 0 without full recompute."""
    if layout.recompute != "full":
        return 0.0
    if (layout.recompute_method or "uniform") != "block":
        return 1.0
    n = layout.recompute_num_layers or 1
    stages = range(len(layout.stage_layers)) if stage is None else (stage,)
    total = sum(layout.stage_layers[i] for i in stages)
    done = sum(min(n, c) for i in stages for c in layout.chunk_layers(i))
    return done / total if total else 0.0


# Megatron-Core's recompute_modules (TransformerConfig) as the layer ops each one reruns in the
# backward, by op name (model/ops.py); a GEMM's quantize and scale-swizzle kernels rerun with it.
# core_attn: the attention core; layernorm: the input and pre-MLP norms; mla_up_proj: "the MLA up
# projection and RoPE applying parts" (the latent norms are fused into the up projections);
# moe_act: the routed experts' activation (and GPT-OSS's clamp around it); shared_experts: the
# shared expert MLP; mlp: the dense MLP module (its fused pre-MLP norm, fc1, activation, fc2);
# moe: the MoE layer (router, dispatcher, experts, shared experts, combine). mlp and moe rerun their
# collectives as well: the MLP side's TP half and, for moe, the EP all-to-alls.
_MLA_UP = ("q_latent_norm", "q_up", "q_proj", "kv_latent_norm", "kv_up")   # q_proj: no q_lora_rank
_SUFFIXES = ("_quantize", "_scale_swizzle")


def _base(name: str) -> str:
    for sfx in _SUFFIXES:
        if name.endswith(sfx):
            return name[:-len(sfx)]
    return name


def _in_module(o: Op, module: str, moe: bool) -> bool:
    name = _base(o.name)
    if module == "core_attn":
        return o.attention_core
    if module == "layernorm":
        return name in ("input_norm", "post_attn_norm")
    if module == "mla_up_proj":
        return name in _MLA_UP
    if module == "moe_act":
        return moe and o.rerun and name.startswith("expert_")
    if module == "shared_experts":
        return moe and name.startswith("shared_")
    if module == "mlp":
        return not moe and o.scope == "mlp" and not name.startswith("mlp_")
    if module == "moe":
        return moe and o.scope in ("moe", "moe_router", "moe_preprocess") and name != "post_attn_norm" \
            and not name.startswith("mlp_")
    raise ValueError(f"unknown recompute module {module!r}")


def rerun_ops(ops: list[Op], modules: tuple[str, ...], moe: bool) -> set[str]:
    """Names of the ops of one layer that recomputing ``modules`` reruns; a quantize /
    scale-swizzle kernel reruns when its GEMM does (it carries no scope of its own)."""
    member = {o.name for o in ops if _base(o.name) == o.name and any(_in_module(o, m, moe) for m in modules)}
    return {o.name for o in ops if _base(o.name) in member}


def module_savings(a: Arch, mods: tuple[str, ...], tokens: float, ffn_tokens: float, ffn: int, g: float,
                    fp8: bool, moe: bool, replicated: float, attn_split: float, mlp_split: float,
                    shared_split: float) -> tuple[float, float, float, float]:
    """The saved tensors that Megatron-Core's recompute_modules rebuild in the backward instead of
    keeping (transformer_config.py: layernorm, moe_act and mla_up_proj discard their outputs and
    rerun; core_attn, mlp, moe and shared_experts checkpoint their module, keeping its input only).

    - layernorm: the two norms' outputs. Kept in bf16 by the QKV and fc1 / router GEMMs that read
      them; under FP8 the attention side's consumer keeps its own FP8 copy, so only an MoE layer's
      router input (a bf16 GEMM; its slot as counted above) goes.
    - moe_act: the routed experts' activation output (fc2's input), and a clamped gate's copy.
    - mla_up_proj: the up-projected and rotated Q, K, V; the latents they come from stay.
    - mlp (dense layers): fc1's input, its output and fc2's input; the module's input is the
      residual stream (the pre-MLP norm is fused into fc1), which the layer keeps anyway.
    - moe (MoE layers): the router logits, the permuted tokens and every expert tensor, the shared
      expert's included; the layer's input is kept instead of the router's copy of it.
    - shared_experts (MoE layers): the shared expert MLP's tensors.
    core_attn is the attention core (flash attention keeps nothing of it; handled by the caller)."""
    h = a.hidden
    if "layernorm" in mods:
        replicated -= tokens * h * (2 * g if not fp8 else (g if moe else 0.0))
    if moe and "moe" in mods:
        attn_split -= tokens * a.num_experts * 4
        replicated -= tokens * a.topk * h * 2 + tokens * g * h - tokens * 2 * h
        mlp_split, shared_split = 0.0, 0.0
    if moe and "moe_act" in mods:
        mlp_split = max(0.0, mlp_split - ffn_tokens * g * ffn)
        if a.act_clamp and a.gated:   # the clamped copy the fused activation was given reruns too
            mlp_split = max(0.0, mlp_split - ffn_tokens * 2 * 2 * ffn)
    if moe and "shared_experts" in mods:
        shared_split = 0.0
    if not moe and "mlp" in mods:
        # the pre-MLP norm is fused into fc1 (Transformer Engine), so the module's input is the
        # residual stream the layer keeps anyway: fc1's copy of the normed input goes as well
        replicated -= tokens * g * h
        mlp_split = 0.0
    if a.mla and "mla_up_proj" in mods:
        attn_split -= tokens * (2 * a.q_width + 2 * a.kv_width + 2 * a.v_width)
    return max(replicated, 0.0), max(attn_split, 0.0), mlp_split, shared_split
