"""The work of one transformer layer on one GPU for one microbatch: FLOPs and HBM bytes per op.

Each op declares its forward FLOPs and bytes moved; time is derived from these in one place
(simulator/cost/compute.py). Shapes are per GPU after tensor (TP), sequence (SP) and context (CP)
parallelism. Attention FLOPs are what the kernel executes: a causal flash-attention kernel skips
the masked half; the unfused (pre-2022) path computes the full s x s score matrix.
"""
from __future__ import annotations

from dataclasses import dataclass

from simulator.model.arch import Arch


@dataclass(frozen=True)
class Op:
    name: str
    kind: str              # "gemm" (tensor cores) or "memory" (element-wise, bandwidth bound)
    flops: float           # forward FLOPs on this GPU
    bytes: float           # forward HBM traffic on this GPU
    bwd_factor: float = 2.0    # backward work / forward work
    attention_core: bool = False   # recomputed under selective recomputation
    count: int = 1         # identical kernels (e.g. one GEMM per local expert)
    linear: bool = False   # a transformer block's linear layer: FP8 under precision fp8 (Transformer Engine)
    sparse: bool = False   # 2:4-sparse weights on sparse tensor cores (training.sparsity_2to4)
    shape: tuple[float, float, float] | None = None   # (m, k, n) of one GEMM kernel (cost/compute.py)


@dataclass(frozen=True)
class Shard:
    """How one microbatch is split over a GPU's parallel groups."""

    micro_batch: int
    tp: int
    cp: int
    ep: int
    sequence_parallel: bool
    flash_attention: bool
    act_bytes: float = 2.0     # bytes per activation element (bf16/fp16)
    sparse_2to4: bool = False  # MLP weights 2:4-sparse (training.sparsity_2to4)

    def tokens(self, a: Arch) -> float:
        return self.micro_batch * a.seq / self.cp

    def norm_tokens(self, a: Arch) -> float:
        """Tokens seen by element-wise ops on the hidden stream (split by SP over TP ranks)."""
        return self.tokens(a) / (self.tp if self.sequence_parallel else 1)


def gemm(name: str, m: float, k: float, n: float, e: float, count: int = 1, linear: bool = False,
         sparse: bool = False) -> Op:
    """A (m x k) @ (k x n) matrix multiply reading both operands and writing the result once."""
    return Op(name, "gemm", 2.0 * m * k * n, e * (m * k + k * n + m * n), count=count, linear=linear,
              sparse=sparse, shape=(m, k, n))


def memory_op(name: str, elements: float, e: float, bwd_factor: float = 2.0) -> Op:
    return Op(name, "memory", 0.0, elements * e, bwd_factor)


def attention_ops(a: Arch, sh: Shard) -> list[Op]:
    e, t, b = sh.act_bytes, sh.tp, sh.micro_batch
    heads = a.heads / t
    sq, sk, d = a.seq / sh.cp, a.seq, a.kv_channels
    if sh.flash_attention:
        # causal: half of the score blocks are skipped; backward recomputes scores (2.5x forward)
        flops = 2 * 2.0 * b * heads * sq * sk * d * 0.5
        io = e * b * sq * (2 * heads * d) + e * b * sk * (2 * a.query_groups / t * d)
        return [Op("flash_attention", "gemm", flops, io, bwd_factor=2.5, attention_core=True)]
    bh = b * heads
    return [
        Op("attn_scores", "gemm", 2.0 * bh * sq * sk * d, e * bh * (sq * d + sk * d + sq * sk),
           attention_core=True),
        # fused scale-mask-softmax (read scores, write probabilities) + dropout (read, write, mask)
        # when attention_dropout > 0 (no dropout kernel runs at p = 0)
        Op("attn_softmax_dropout", "memory", 0.0,
           bh * sq * sk * (2 * e + ((2 * e + 1) if a.attention_dropout > 0 else 0)), attention_core=True),
        Op("attn_values", "gemm", 2.0 * bh * sq * sk * d, e * bh * (sq * sk + sk * d + sq * d),
           attention_core=True),
    ]


def mlp_ops(a: Arch, sh: Shard, tokens: float, ffn: int, prefix: str, count: int = 1) -> list[Op]:
    e, t = sh.act_bytes, sh.tp
    up = (2 if a.gated else 1) * ffn / t
    act_elems = tokens * (3 if a.gated else 2) * ffn / t  # SwiGLU reads 2 inputs, writes 1
    return [
        gemm(f"{prefix}fc1", tokens, a.hidden, up, e, count, linear=True, sparse=sh.sparse_2to4),
        Op(f"{prefix}activation", "memory", 0.0, act_elems * e * count),
        gemm(f"{prefix}fc2", tokens, ffn / t, a.hidden, e, count, linear=True, sparse=sh.sparse_2to4),
    ]


def _residual_elems(a: Arch, tokens: float) -> float:
    """Elements moved by a fused bias + dropout + residual add: read two, write one, plus a 1-byte
    mask (half a 2-byte element) written when hidden_dropout > 0."""
    return (3 + (0.5 if a.hidden_dropout > 0 else 0.0)) * tokens * a.hidden


def layer_ops(a: Arch, sh: Shard, moe: bool = False) -> list[Op]:
    """Forward ops of one layer for one microbatch on one GPU (dense, or MoE when ``moe``)."""
    e, t = sh.act_bytes, sh.tp
    T, Tn = sh.tokens(a), sh.norm_tokens(a)
    ops = [
        memory_op("input_norm", 2 * Tn * a.hidden, e),
        gemm("qkv", T, a.hidden, (a.attn_width + 2 * a.kv_width) / t, e, linear=True),
        *attention_ops(a, sh),
        gemm("attn_proj", T, a.attn_width / t, a.hidden, e, linear=True),
        memory_op("attn_residual", _residual_elems(a, Tn), e),   # bias + dropout + add, fused
        memory_op("post_attn_norm", 2 * Tn * a.hidden, e),
    ]
    if moe:
        local = max(a.num_experts // sh.ep, 1)
        per_expert = T * a.topk * sh.ep / a.num_experts
        ops.append(gemm("router", T, a.hidden, a.num_experts, e))
        ops.append(memory_op("token_permute", 2 * 2 * T * a.topk * a.hidden, e))
        ops += mlp_ops(a, sh, per_expert, a.moe_ffn, "expert_", count=local)
        if a.shared_expert_ffn:
            ops += mlp_ops(a, sh, T, a.shared_expert_ffn, "shared_")
    else:
        ops += mlp_ops(a, sh, T, a.ffn, "")
    ops.append(memory_op("mlp_residual", _residual_elems(a, Tn), e))
    return ops


def embedding_ops(a: Arch, sh: Shard) -> list[Op]:
    """First stage: embedding lookup (+ positions, + embedding norm)."""
    Tn = sh.norm_tokens(a)
    elems = Tn * a.hidden * (2 + a.learned_positions + 2 * a.embedding_norm)
    return [memory_op("embedding", elems, sh.act_bytes)]


def output_ops(a: Arch, sh: Shard) -> list[Op]:
    """Last stage: final norm, vocabulary projection, cross-entropy over fp32 logits."""
    T, Tn, e = sh.tokens(a), sh.norm_tokens(a), sh.act_bytes
    v = a.vocab / sh.tp
    return [
        memory_op("final_norm", 2 * Tn * a.hidden, e),
        gemm("logits", T, a.hidden, v, e),
        memory_op("cross_entropy", T * v * (e + 4 + 4), 1.0, bwd_factor=1.0),
    ]


def fwd_flops(ops: list[Op]) -> float:
    return sum(op.flops * op.count for op in ops)
