"""The MLP block's ops (dense and per-expert), with the eager clamp some gated activations run first."""
from __future__ import annotations

from simulator.model.arch import Arch
from simulator.model.op import Op, Shard, gemm


def clamp_ops(a: Arch, half_elems: float, e: float, prefix: str, count: int = 1, scope: str = "") -> list[Op]:
    """The eager clamp ahead of a gated activation (Megatron-Core ``activation_func_clamp_value``),
    empty without one. ``half_elems``: elements of one half (gate or linear) of the activation input.

    Megatron's weighted_bias_quick_geglu_impl (NVIDIA/Megatron-LM
    megatron/core/fusions/fused_bias_geglu.py @ 034fd2d3) splits fc1's output into its gate and
    linear halves, clamps each with ``torch.clamp`` and concatenates them back with ``torch.cat``
    before the fused activation kernel: three eager kernels. Forward: each clamp reads and writes
    its half (2 elements per half element), the concatenation reads and writes both halves (4).
    Backward (autograd): each clamp's backward reads the gradient and its saved input and writes the
    gradient (3); the concatenation's backward only slices (no kernel); the split (``chunk``) joins the
    two halves' gradients with one more concatenation (4)."""
    if not a.act_clamp:
        return []
    return [Op(f"{prefix}act_clamp", "memory", 0.0, 2 * half_elems * e, bwd_factor=1.5, count=2 * count,
               scope=scope, rerun=True),
            Op(f"{prefix}act_clamp_cat", "memory", 0.0, 4 * half_elems * e, bwd_factor=1.0, count=count,
               scope=scope, rerun=True)]


def mlp_ops(a: Arch, sh: Shard, tokens: float, ffn: int, prefix: str, count: int = 1) -> list[Op]:
    e, t = sh.act_bytes, sh.tp
    up = (2 if a.gated else 1) * ffn / t
    act_elems = tokens * (3 if a.gated else 2) * ffn / t  # SwiGLU reads 2 inputs, writes 1
    return [
        gemm(f"{prefix}fc1", tokens, a.hidden, up, e, count, linear=True, sparse=sh.sparse_2to4),
        *clamp_ops(a, tokens * ffn / t, e, prefix, count),
        Op(f"{prefix}activation", "memory", 0.0, act_elems * e * count, rerun=True),
        gemm(f"{prefix}fc2", tokens, ffn / t, a.hidden, e, count, linear=True, sparse=sh.sparse_2to4),
    ]
