"""The work of one transformer layer on one GPU for one microbatch: FLOPs and HBM bytes per op.

Each op declares its forward FLOPs and bytes moved; time is derived from these in one place
(simulator/cost/compute.py). Shapes are per GPU after tensor (TP), sequence (SP) and context (CP)
parallelism. Attention FLOPs are what the kernel executes: a causal flash-attention kernel skips
the masked half; the unfused (pre-2022) path computes the full s x s score matrix.
"""
from __future__ import annotations

from dataclasses import replace
from functools import lru_cache

from simulator.model.arch import Arch
# re-exported: the op types, and the MLP and MoE ops built in their own modules
from simulator.model.mlp_ops import clamp_ops, mlp_ops  # noqa: F401
from simulator.model.moe_ops import (DISPATCH_LAUNCHES, FLEX_DISPATCH_LAUNCHES, FLEX_PREPROCESS_LAUNCHES,  # noqa: F401
                                     GROUP_STREAMS, PREPROCESS_LAUNCHES, ROUTER_LAUNCHES, expert_bias_ops,
                                     expert_ops, permute_elements, tokens_per_expert)
from simulator.model.op import Op, Shard, gemm, in_scope, memory_op  # noqa: F401
from simulator.model.precision import QUANTIZATION


# Query and key block of a fused attention kernel: FlashAttention-2/3 and cuDNN's fused attention
# tile the score matrix in 128 x 128 blocks for head dims up to 128 (Dao 2023, Sec. 3.1; Shah et al.
# 2024, FlashAttention-3 block sizes); a block the causal or window mask touches is computed whole.
ATTN_BLOCK = 128


@lru_cache(maxsize=256)
def tiled_pairs(s: int, w: int, block: int = ATTN_BLOCK) -> float:
    """(query, key) pairs a block-tiled causal kernel computes over ``s`` tokens with a window of
    ``w`` keys: each query block runs every key block from the one holding its first query's
    window start up to its diagonal block."""
    n = -(-s // block)
    blocks = 0
    for j in range(n):
        first = max(0, j * block - w) // block
        blocks += j - first + 1
    return float(blocks * block * block)


def flash_keys_fraction(a: Arch) -> float:
    """Mean over layers of the pairs a flash kernel computes, relative to the exact causal s^2 / 2:
    slightly above 1 for full layers (whole diagonal blocks), about (w + block) / (s / 2) for a
    window w (the window's blocks plus the diagonal one)."""
    s = a.seq
    per = {w: tiled_pairs(s, w) for w in {a.window(i) for i in range(a.num_layers)}}
    return sum(per[a.window(i)] for i in range(a.num_layers)) / (a.num_layers * s * s / 2.0)


def attention_ops(a: Arch, sh: Shard) -> list[Op]:
    e, t, b = sh.act_bytes, sh.tp, sh.micro_batch
    heads = a.heads / t
    sq, sk = a.seq / sh.cp, a.seq
    dqk, dv = a.qk_head_dim, a.v_head_dim
    if sh.flash_attention:
        # causal: the blocks above the diagonal are skipped, and a sliding window skips the blocks
        # outside it (mean over the layer pattern, whole blocks); backward recomputes scores (2.5x)
        pairs = sq * sk * 0.5 * flash_keys_fraction(a)
        flops = 2.0 * b * heads * pairs * (dqk + dv)
        io = e * b * sq * heads * (dqk + dv) + e * b * sk * a.kv_exchange_width / t
        core = Op("flash_attention", "gemm", flops, io, bwd_factor=2.5, attention_core=True,
                  exps=b * heads * pairs, kernel=sh.attention_kernel, fp8=sh.fp8_attention)
        if not sh.fp8_attention:
            return [core]
        # FP8 attention (Transformer Engine's FP8 fused attention): queries, keys and values are
        # cast to FP8 before the kernel, and the output gradient before its backward; per-tensor
        # current scaling, one copy each (attention reads each operand one way): an amax read, a
        # cast read and a 1-byte write of the bf16 source, 5 bytes per element (model/precision.py)
        cast = QUANTIZATION["fp8_cs"].bytes_per_element(any_layout=True)
        fwd = cast * (b * sq * heads * dqk + b * sk * a.kv_exchange_width / t)
        bwd = cast * b * sq * heads * dv
        return [Op("attention_fp8_cast", "memory", 0.0, fwd, bwd_factor=bwd / fwd, attention_core=True), core]
    bh = b * heads
    # the unfused path materialises the whole s x s score matrix, window or not (masked)
    return [
        Op("attn_scores", "gemm", 2.0 * bh * sq * sk * dqk, e * bh * (sq * dqk + sk * dqk + sq * sk),
           attention_core=True),
        # fused scale-mask-softmax (read scores, write probabilities) + dropout (read, write, mask)
        # when attention_dropout > 0 (no dropout kernel runs at p = 0)
        Op("attn_softmax_dropout", "memory", 0.0,
           bh * sq * sk * (2 * e + ((2 * e + 1) if a.attention_dropout > 0 else 0)), attention_core=True),
        Op("attn_values", "gemm", 2.0 * bh * sq * sk * dv, e * bh * (sq * sk + sk * dv + sq * dv),
           attention_core=True),
    ]


def qkv_ops(a: Arch, sh: Shard) -> list[Op]:
    """The projections into queries, keys and values (and their norms) of one layer.

    Multi-head latent attention: the down projections (h -> q_lora_rank, h -> kv_lora_rank + rope)
    and their norms are not split over TP ranks (Megatron-Core runs them whole on each rank's
    tokens: the sequence shard under sequence parallelism, whose latents are then gathered); the up
    projections are split by heads like QKV.
    """
    e, t = sh.act_bytes, sh.tp
    T, Tn = sh.tokens(a), sh.norm_tokens(a)
    ops: list[Op] = []
    if a.mla:
        H = a.heads
        if a.q_lora_rank:
            ops += [gemm("q_down", Tn, a.hidden, a.q_lora_rank, e, linear=True),
                    memory_op("q_latent_norm", 2 * Tn * a.q_lora_rank, e, rerun=True),
                    gemm("q_up", T, a.q_lora_rank, a.q_width / t, e, linear=True)]
        else:
            ops.append(gemm("q_proj", T, a.hidden, a.q_width / t, e, linear=True))
        ops += [gemm("kv_down", Tn, a.hidden, a.kv_lora_rank + a.qk_rope_dim, e, linear=True),
                memory_op("kv_latent_norm", 2 * Tn * a.kv_lora_rank, e, rerun=True),
                gemm("kv_up", T, a.kv_lora_rank, H * (a.qk_nope_dim + a.v_dim) / t, e, linear=True)]
    else:
        ops.append(gemm("qkv", T, a.hidden, (a.attn_width + 2 * a.kv_width) / t, e, linear=True))
    if a.qk_layernorm:
        ops.append(memory_op("qk_norm", 2 * T * (a.q_width + a.kv_width) / t, e, rerun=True))
    ops += rope_ops(a, sh, T * (a.q_width + a.kv_width) / t, e)
    return ops


# Megatron-Core's unfused RoPE, _apply_rotary_pos_emb_bshd (megatron/core/models/common/embeddings/
# rope_utils.py @ b0cc2706), on one query or key tensor of N elements: rotate_half's negation of one
# half (N/2 read, N/2 written) and concatenation (N, N), the products with the cosines and the sines
# (N, N each), their sum (2N, N) and the closing concatenation with the unrotated rest (N, N): 12N
# element accesses in six full-size kernels, plus six small ones on the [s, 1, 1, d] frequencies
# (cos, sin, the attention-factor products, the casts). Backward (autograd): the gradient times
# sin and times cos (2N each), the negation's (N), the chunk's concatenation (2N), the sum of the two
# paths (3N) and the slice's zero-filled copy (3N): 13N in seven kernels.
ROPE_KERNELS = 6           # full-size kernels per tensor, forward
ROPE_ACCESSES = 12.0       # element reads + writes per element, forward
ROPE_BWD_ACCESSES = 13.0
ROPE_LAUNCHES = 12         # host launches per tensor, forward (six full-size, six on the frequencies)


def rope_ops(a: Arch, sh: Shard, elements: float, e: float) -> list[Op]:
    """Rotating this GPU's queries and keys (``elements``: their element count) where it is not
    fused. Megatron-Core's unfused path: a YaRN attention factor other than 1 (``Arch.rope_unfused``),
    which TE's fused RoPE does not take (rope_utils.py @ b0cc2706 falls back with "mscale=... is not
    supported by TE's fused RoPE"): two tensors (queries, keys), each ROPE_KERNELS kernels, the op's
    copies sharing the accesses. Eager PyTorch (``sh.eager``): torchtitan's complex fp32 rotation
    (EAGER_ROPE_BYTES, below), rerun by selective_op recomputation like the norms. The fused kernel
    of every other RoPE model is not costed (one read and one write of q and k, inside the fitted
    efficiencies); latent attention rotates inside its own projections."""
    if a.rope_unfused:
        kernels = 2 * ROPE_KERNELS
        return [Op("rope_unfused", "memory", 0.0, ROPE_ACCESSES * elements * e / kernels,
                   bwd_factor=ROPE_BWD_ACCESSES / ROPE_ACCESSES, count=kernels,
                   launches=2 * ROPE_LAUNCHES / kernels)]
    if sh.eager and a.rope and not a.mla:
        return [Op("rope_eager", "memory", 0.0, EAGER_ROPE_BYTES * elements, bwd_factor=1.0,
                   launches=2 * EAGER_ROPE_KERNELS, rerun=True)]
    return []


def _residual_elems(a: Arch, tokens: float) -> float:
    """Elements moved by a fused bias + dropout + residual add: read two, write one, plus a 1-byte
    mask (half a 2-byte element) written when hidden_dropout > 0."""
    return (3 + (0.5 if a.hidden_dropout > 0 else 0.0)) * tokens * a.hidden


def residual_ops(a: Arch, tokens: float, e: float, prefix: str, scope: str = "") -> list[Op]:
    """The bias-dropout-add after a sublayer (``prefix`` "attn" or "mlp").

    Fused (Megatron-Core ``bias_dropout_fusion``, the default): one kernel (_residual_elems).
    Unfused (_bias_dropout_add_func in NVIDIA/Megatron-LM megatron/core/fusions/fused_bias_dropout.py
    @ e8b9df15: ``x + bias``, then ``torch.nn.functional.dropout``, then ``residual + out``): one
    eager kernel per step, each a full
    pass over the hidden stream -- the bias add reads the output and writes it again (2 elements per
    token and channel; the bias vector itself is negligible), dropout reads, writes and stores a
    1-byte mask (2.5; skipped at p = 0, where PyTorch returns its input untouched), the residual add
    reads two and writes one (3). The backward of each pass moves its gradients as the fused kernel's
    does (bwd_factor 2)."""
    if a.bias_dropout_fusion:
        return [memory_op(f"{prefix}_residual", _residual_elems(a, tokens), e, scope=scope)]
    T, h = tokens, a.hidden
    ops = []
    if a.linear_bias:
        ops.append(memory_op(f"{prefix}_bias_add", 2 * T * h, e, scope=scope))
    if a.hidden_dropout > 0:
        ops.append(memory_op(f"{prefix}_dropout", 2.5 * T * h, e, scope=scope))
    ops.append(memory_op(f"{prefix}_residual", 3 * T * h, e, scope=scope))
    return ops


# Eager PyTorch (training.kernel_fusion: eager): the element-wise parts of a layer as eager modules
# write them, each PyTorch op its own kernel over the whole tensor, instead of the fused kernels the
# rest of the op model assumes (Transformer Engine / Megatron-Core fusions, or torch.compile). Bytes
# per element, forward, from the modules' code (torchtitan @ 9dec370, the version of its published
# benchmarks: torchtitan/models/norms.py, torchtitan/models/llama/model.py):
# - RMSNorm, computed through fp32 (x.float(); x.pow(2); .mean(-1); + eps, rsqrt; x * r; .type_as(x);
#   * weight): read 2 / write 4, read 4 / write 4, read 4, read 4 / write 4, read 4 / write 2, read 2 /
#   write 2 = 36 bytes in 7 kernels, against the fused kernel's 4 (read and write in bf16). LayerNorm
#   is one native kernel in eager PyTorch too (F.layer_norm), so it is left as it is.
# - SwiGLU, F.silu(w1(x)) * w3(x): silu reads and writes the gate half, the product reads both halves
#   and writes one: 5 elements per output element in 2 kernels against the fused kernel's 3.
# - RoPE on queries and keys through complex fp32 (xq.float() viewed as complex, times freqs_cis,
#   viewed back, .type_as(xq)): read 2 / write 4, read 4 / write 4, read 4 / write 2 = 20 bytes per
#   element in 3 kernels per tensor; its backward moves as much (the two casts and the complex
#   product's gradient). The fused RoPE of the other stacks is inside the fitted efficiencies.
# Each op's backward keeps the fused op's ratio to its forward (bwd_factor): autograd runs one
# backward kernel per forward kernel over the same tensors.
EAGER_RMSNORM_BYTES, FUSED_NORM_BYTES, EAGER_RMSNORM_KERNELS = 36.0, 4.0, 7
EAGER_SWIGLU_ELEMS, FUSED_SWIGLU_ELEMS, EAGER_SWIGLU_KERNELS = 5.0, 3.0, 2
EAGER_ROPE_BYTES, EAGER_ROPE_KERNELS = 20.0, 3


def eager_ops(a: Arch, sh: Shard, ops: list[Op]) -> list[Op]:
    """``ops`` as eager PyTorch runs them (Shard.eager; otherwise unchanged): RMSNorms and the SwiGLU
    product as their op-by-op kernels (eager RoPE is rope_ops')."""
    if not sh.eager:
        return ops
    out: list[Op] = []
    for op in ops:
        if op.kind == "memory" and op.name.endswith("norm") and not a.layernorm:
            op = replace(op, bytes=op.bytes * EAGER_RMSNORM_BYTES / FUSED_NORM_BYTES,
                         launches=op.launches * EAGER_RMSNORM_KERNELS)
        elif op.kind == "memory" and op.name.endswith("activation") and a.gated:
            op = replace(op, bytes=op.bytes * EAGER_SWIGLU_ELEMS / FUSED_SWIGLU_ELEMS,
                         launches=op.launches * EAGER_SWIGLU_KERNELS)
        out.append(op)
    return out


def layer_ops(a: Arch, sh: Shard, moe: bool = False) -> list[Op]:
    """Forward ops of one layer for one microbatch on one GPU (dense, or MoE when ``moe``)."""
    return eager_ops(a, sh, _layer_ops(a, sh, moe))


def _layer_ops(a: Arch, sh: Shard, moe: bool) -> list[Op]:
    e, t = sh.act_bytes, sh.tp
    T, Tn = sh.tokens(a), sh.norm_tokens(a)
    # CUDA-graph scopes as Megatron-Core names them: "attn" (input norm, attention, its
    # bias-dropout-add), "mlp" / "moe" (pre-MLP norm, the MLP or MoE layer, its bias-dropout-add),
    # "moe_router" (pre-MLP norm and router), "moe_preprocess" (the dispatcher's metadata)
    ops = in_scope([
        memory_op("input_norm", 2 * Tn * a.hidden, e, rerun=True),
        *qkv_ops(a, sh),
        *attention_ops(a, sh),
        gemm("attn_proj", T, a.attn_width / t, a.hidden, e, linear=True),
        *residual_ops(a, Tn, e, "attn"),   # bias + dropout + add
    ], "attn")
    if moe:
        ops.append(memory_op("post_attn_norm", 2 * Tn * a.hidden, e, scope="moe_router", rerun=True))
        router = gemm("router", T, a.hidden, a.num_experts, e, scope="moe_router")
        ops.append(replace(router, launches=ROUTER_LAUNCHES))
        # tokens per expert, split sizes (int32 / int64 per token and expert): negligible bytes
        ops.append(memory_op("dispatch_preprocess", 4 * T * a.topk, 1.0, bwd_factor=0.0,
                             scope="moe_preprocess",
                             launches=FLEX_PREPROCESS_LAUNCHES if a.deepep else PREPROCESS_LAUNCHES))
        ops.append(memory_op("token_permute", permute_elements(a, sh, T), e, bwd_factor=1.0, scope="moe",
                             launches=FLEX_DISPATCH_LAUNCHES if a.deepep else DISPATCH_LAUNCHES))
        ops += expert_ops(a, sh, T)
        if a.shared_expert_ffn:
            ops += in_scope(mlp_ops(a, sh, T, a.shared_expert_ffn, "shared_"), "moe")
        ops += residual_ops(a, Tn, e, "mlp", scope="moe")
    else:
        ops += in_scope([memory_op("post_attn_norm", 2 * Tn * a.hidden, e, rerun=True),
                         *mlp_ops(a, sh, T, a.ffn, ""),
                         *residual_ops(a, Tn, e, "mlp")], "mlp")
    return ops


def embedding_ops(a: Arch, sh: Shard) -> list[Op]:
    """First stage: embedding lookup (+ positions, + embedding norm)."""
    Tn = sh.norm_tokens(a)
    elems = Tn * a.hidden * (2 + a.learned_positions + 2 * a.embedding_norm)
    return [memory_op("embedding", elems, sh.act_bytes)]


def head_ops(a: Arch, sh: Shard) -> list[Op]:
    """Last stage: final norm, vocabulary projection, cross-entropy over the logits.

    Unfused (Megatron-Core vocab_parallel_cross_entropy): the logits are cast to fp32 and the max,
    the exponentials and the gradient each pass over them: ~10 bytes per logit forward and as many
    backward. Fused (``sh.fused_cross_entropy``: Transformer Engine's Triton kernels,
    transformer_engine/pytorch/triton/cross_entropy.py @ 02965d2e): the forward's online softmax
    reads the bf16 logits once and keeps three fp32 numbers per token (max, sum, target logit); the
    backward reads them once more and writes the gradient in place: one read forward, a read and a
    write backward."""
    T, Tn, e = sh.tokens(a), sh.norm_tokens(a), sh.act_bytes
    v = a.vocab / sh.tp
    loss = (memory_op("cross_entropy", T * v, e, bwd_factor=2.0) if sh.fused_cross_entropy
            else memory_op("cross_entropy", T * v * (e + 4 + 4), 1.0, bwd_factor=1.0))
    return eager_ops(a, sh, [
        memory_op("final_norm", 2 * Tn * a.hidden, e),
        gemm("logits", T, a.hidden, v, e),
        loss,
    ])


def mtp_ops(a: Arch, sh: Shard) -> list[Op]:
    """Each multi-token prediction module: norms, the 2h -> h projection, one layer, its own logits
    and loss (empty without MTP)."""
    if not a.mtp_layers:
        return []
    T, Tn, e = sh.tokens(a), sh.norm_tokens(a), sh.act_bytes
    module = [memory_op("mtp_norms", 4 * Tn * a.hidden, e),
              gemm("mtp_proj", T, 2 * a.hidden, a.hidden / sh.tp, e, linear=True),
              *layer_ops(a, sh, moe=a.last_layer_moe), *head_ops(a, sh)]
    return [replace(op, name=f"mtp_{op.name}", count=op.count * a.mtp_layers) for op in module]


def output_ops(a: Arch, sh: Shard) -> list[Op]:
    """Last stage with the MTP modules on it: the output head, then each MTP module."""
    return head_ops(a, sh) + mtp_ops(a, sh)


def fwd_flops(ops: list[Op]) -> float:
    return sum(op.flops * op.count for op in ops)
