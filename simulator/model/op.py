"""The unit of work the cost model prices: an op (FLOPs, HBM bytes, launches) and the shard of a
layer one GPU runs (simulator/model/ops.py builds the ops of a layer from these)."""
from __future__ import annotations

from dataclasses import dataclass, replace

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
    # softmax exponentials of a fused attention kernel, forward; the backward recomputes the
    # probabilities once (FlashAttention's P = exp(S - LSE)), so it pays as many again
    exps: float = 0.0
    # GEMMs of this shape making up the op, launched one by one from the host onto GROUP_STREAMS
    # streams (Transformer Engine's grouped GEMM: one cuBLAS GEMM per local expert)
    group: int = 1
    launches: float = 1.0  # host-side kernel launches of one forward execution (cost/compute.py:host_time)
    scope: str = ""        # CUDA-graph scope the op is captured in (Megatron cuda_graph_scope names)
    # a norm or an activation function: what selective_op recomputation reruns in the backward
    # (Megatron recompute_modules [layernorm, moe_act]; torchtitan's op-level policy reruns every
    # second matmul as well: parallelism.recompute_matmuls, cost/stage.py)
    rerun: bool = False
    # a memory-bound kernel issued once per GEMM the op feeds: its backward launches one for the
    # data-gradient and one for the weight-gradient GEMM (like a GEMM's)
    per_gemm: bool = False
    # the fused attention kernel an attention-core op runs (training.attention_kernel): "fused" (the
    # generation's best, what the efficiencies were fitted on) or "flash2" (cost/compute.py)
    kernel: str = "fused"
    # an attention core run on the FP8 tensor cores (training.fp8_attention, cost/compute.py)
    fp8: bool = False
    # a grouped op whose GEMMs run as one kernel over every local expert (Transformer Engine's fused
    # grouped MLP): the per-kernel overhead once, every expert's tiles in one wave schedule
    one_kernel: bool = False
    # low-precision casts fused into a neighbouring kernel (the fused grouped MLP): this GEMM's input
    # quantised in the previous GEMM's epilogue, its output gradient in the next one's dgrad epilogue
    input_cast_fused: bool = False
    grad_cast_fused: bool = False


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
    fused_cross_entropy: bool = False   # training.cross_entropy_loss_fusion
    eager: bool = False        # eager PyTorch element-wise kernels (training.kernel_fusion: eager)
    attention_kernel: str = "fused"   # training.attention_kernel: fused or flash2
    fp8_attention: bool = False       # training.fp8_attention under a low-precision recipe

    def tokens(self, a: Arch) -> float:
        return self.micro_batch * a.seq / self.cp

    def norm_tokens(self, a: Arch) -> float:
        """Tokens seen by element-wise ops on the hidden stream (split by SP over TP ranks)."""
        return self.tokens(a) / (self.tp if self.sequence_parallel else 1)


def gemm(name: str, m: float, k: float, n: float, e: float, count: int = 1, linear: bool = False,
         sparse: bool = False, scope: str = "") -> Op:
    """A (m x k) @ (k x n) matrix multiply reading both operands and writing the result once."""
    return Op(name, "gemm", 2.0 * m * k * n, e * (m * k + k * n + m * n), count=count, linear=linear,
              sparse=sparse, shape=(m, k, n), scope=scope)


def memory_op(name: str, elements: float, e: float, bwd_factor: float = 2.0, scope: str = "",
              launches: float = 1.0, rerun: bool = False) -> Op:
    return Op(name, "memory", 0.0, elements * e, bwd_factor, scope=scope, launches=launches, rerun=rerun)


def in_scope(ops: list[Op], scope: str) -> list[Op]:
    """The ops with no CUDA-graph scope of their own placed in ``scope``."""
    return [op if op.scope else replace(op, scope=scope) for op in ops]
