"""The routed experts of one MoE layer on one GPU, and the host launches of Megatron-Core's MoE
plumbing (router, dispatcher) that simulator/model/ops.py places around them."""
from __future__ import annotations

from simulator.model.arch import Arch
from simulator.model.mlp_ops import clamp_ops, mlp_ops
from simulator.model.op import Op, Shard, in_scope


# Transformer Engine's grouped GEMM (GroupedLinear -> nvte_multi_stream_cublas_gemm,
# NVIDIA/TransformerEngine transformer_engine/common/gemm/cublaslt_gemm.cu) is not one kernel: it
# launches one cuBLAS GEMM per local expert from a host loop, round-robin over 4 compute streams
# (num_streams = 4 in transformer_engine/gemm.h), then joins them. Each expert's GEMM is tiled on its
# own (cost/compute.py pads its rows to the 128-row tile and counts its waves with up to 4 GEMMs in
# flight), and every one of them is a host launch.
GROUP_STREAMS = 4

# Host-side launches of Megatron-Core's MoE plumbing per forward, beyond the expert GEMMs: estimates
# read off megatron/core/transformer/moe/router.py (TopKRouter.forward: gating GEMM, random logits
# under force-balancing, fused top-k/softmax, aux-loss scores, tokens per expert, the loss and its
# tracker) and token_dispatcher.py (MoEAlltoAllTokenDispatcher: preprocess = tokens-per-expert
# histogram, all-gather of the counts over EP, split sizes copied to the host with a sync, the
# per-local-expert counts; dispatch + combine = fused permute, all-to-all, sort of the received
# chunks by local expert, each way). The router and preprocess are what Megatron's "moe_router" /
# "moe_preprocess" CUDA-graph scopes capture, because they are many small host-bound ops.
ROUTER_LAUNCHES = 12
PREPROCESS_LAUNCHES = 10
DISPATCH_LAUNCHES = 6
# The flex dispatcher (moe_token_dispatcher_type "flex": DeepEP / HybridEP) fuses the permutation,
# the all-to-all and the sort by local expert into one dispatch kernel and its mirror combine
# (MoEFlexTokenDispatcher with _HybridEPManager / _DeepepManager, NVIDIA/Megatron-LM
# megatron/core/transformer/moe/token_dispatcher.py @ core_v0.16.0 = 3bec9aa9): its preprocess is the routing
# map and probabilities expanded over the TP x EP group (two copies; no histogram, no all-gather of
# the counts), its dispatch the probabilities' fp32 cast, the fused dispatch (metadata and data
# kernels) and the tokens-per-expert sum, its combine one fused kernel.
FLEX_PREPROCESS_LAUNCHES = 2
FLEX_DISPATCH_LAUNCHES = 5


def permute_elements(a: Arch, sh: Shard, tokens: float) -> float:
    """Activation elements the alltoall dispatcher moves through HBM per forward (the backward moves
    the same gradients once): permute reads each token and writes its top-k copies, unpermute
    reads the copies back and writes one sum per token, (1 + k) x tokens x hidden each; with EP and
    several local experts, the received chunks are sorted by local expert after the dispatch and
    back before the combine (Megatron-Core MoEAlltoAllTokenDispatcher, sort_chunks_by_idxs), a read
    and a write of the k copies each way."""
    k, h = a.topk, a.hidden
    moved = 2 * (1 + k) * tokens * h
    if sh.ep > 1 and a.num_experts // sh.ep > 1 and not a.deepep:   # flex: sorted by the dispatch kernel
        moved += 2 * 2 * k * tokens * h
    return moved


def tokens_per_expert(a: Arch, sh: Shard, tokens: float) -> float:
    """Mean routed tokens each local expert of the busiest EP rank processes per microbatch."""
    imbalance = a.load_imbalance if sh.ep > 1 else 1.0   # one rank holding every expert: no straggler
    return tokens * a.topk * sh.ep / a.num_experts * imbalance


def expert_ops(a: Arch, sh: Shard, tokens: float) -> list[Op]:
    """The routed experts of one MoE layer on one GPU.

    With grouped GEMM (``moe_grouped_gemm``, Megatron's TEGroupedMLP) fc1 and fc2 are each one
    GEMM per local expert of (tokens per expert) x hidden x ffn, launched by one host call onto
    GROUP_STREAMS streams: few tokens per expert fill few tiles (cost/compute.py), and each expert's
    weights are read whatever its token count (the roofline's memory side). Without it, separate
    ops per local expert, each paying the per-kernel overhead in line (Megatron's SequentialMLP).

    With ``fused_grouped_mlp`` (model.moe.moe_fused_grouped_mlp: Transformer Engine's operation
    fuser, transformer_engine/pytorch/ops/fused/grouped_mlp.py @ d0067d0d) each of fc1 and fc2 is one
    block-scaled grouped-GEMM kernel over every local expert: fc1's epilogue applies the gated
    activation (its clamp included), the routing-probability scaling, fc1's bias and fc2's input
    quantisation; fc2's data-gradient kernel applies the activation's backward and quantises fc1's
    output gradient; fc2's bias rides in its kernel. So the activation, clamp and bias kernels and
    those two casts are gone, one launch and one kernel overhead per GEMM, and the experts' tiles
    share the waves. fc1's output is still written (its bytes unchanged: the fused kernel writes the
    activated half in the low-precision format, which this leaves uncounted).
    """
    local = max(a.num_experts // sh.ep, 1)
    m = tokens_per_expert(a, sh, tokens)
    if not a.grouped_gemm:
        return in_scope(mlp_ops(a, sh, m, a.moe_ffn, "expert_", count=local), "moe")
    e, t = sh.act_bytes, sh.tp
    up, ffn = (2 if a.gated else 1) * a.moe_ffn / t, a.moe_ffn / t
    act_elems = local * m * (3 if a.gated else 2) * a.moe_ffn / t

    def grouped(name: str, k: float, n: float, **fused) -> Op:
        return Op(name, "gemm", local * 2.0 * m * k * n, local * e * (m * k + k * n + m * n),
                  linear=True, sparse=sh.sparse_2to4, shape=(m, k, n), group=local,
                  launches=1 if a.fused_grouped_mlp else local, scope="moe", one_kernel=a.fused_grouped_mlp,
                  **fused)

    if a.fused_grouped_mlp:
        return [grouped("expert_fc1", a.hidden, up, grad_cast_fused=True),
                grouped("expert_fc2", ffn, a.hidden, input_cast_fused=True)]
    return [grouped("expert_fc1", a.hidden, up),
            *clamp_ops(a, local * m * ffn, e, "expert_", scope="moe"),   # one kernel over all local experts
            Op("expert_activation", "memory", 0.0, act_elems * e, scope="moe", rerun=True),
            grouped("expert_fc2", ffn, a.hidden),
            *expert_bias_ops(a, local, m, e)]


def expert_bias_ops(a: Arch, local: int, m: float, e: float) -> list[Op]:
    """fc2's bias in the grouped expert MLP (``add_bias_linear`` with TEGroupedMLP), empty without.

    fc1's bias is added inside Transformer Engine's grouped GEMM; fc2's is returned apart
    (skip_bias_add) and added after it, scaled by each token's routing probability, by
    TEGroupedMLP._apply_bias (NVIDIA/Megatron-LM megatron/core/transformer/moe/experts.py @
    e8b9df15): the output is split by local expert, each piece gets ``t + b * p`` (two eager kernels
    per local expert: the scaled bias written once, then read with the piece and the sum written,
    4 elements per routed token and channel) and the pieces are concatenated again (read and write,
    2). Backward (autograd): ``b * p`` gives the bias gradient (gradient x probability, summed over
    tokens) and the probability gradient (gradient x bias, summed over channels), 6 elements per
    routed token and channel, and the split's backward concatenates the pieces' gradients (2). The
    backward's kernels are counted as the forward's (two per local expert and one)."""
    if not a.linear_bias:
        return []
    return [Op("expert_fc2_bias", "memory", 0.0, 2 * m * a.hidden * e, bwd_factor=1.5, count=2 * local,
               scope="moe"),
            Op("expert_fc2_bias_cat", "memory", 0.0, 2 * local * m * a.hidden * e, bwd_factor=1.0, scope="moe")]
