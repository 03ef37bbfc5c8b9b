"""Memory per GPU: model states (weights, gradients, optimizer) and activations, per pipeline stage.

Model states follow mixed-precision Adam accounting (Rajbhandari et al. 2020, ZeRO): 2 bytes of
bf16 weights + 2 of gradients + K of optimizer state per parameter (Adam: fp32 master, m, v = 12);
ZeRO-1 / the distributed optimizer shard the K bytes over the data-parallel ranks, ZeRO-2 also the
gradients, ZeRO-3 everything. Activations follow Korthikanti et al. 2022 (Table 2), written per
tensor so they generalise to GQA, SwiGLU and MoE: for a standard GPT layer they reduce to
s*b*h*(34 + 5*a*s/h) bytes, /t with sequence parallelism, 2*s*b*h under full recomputation.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

from simulator.model.arch import Arch
from simulator.model.params import (
    dense_layer_params, embedding_params, moe_layer_params, mtp_params, output_params,
)
from simulator.model.precision import is_low_precision

GIB = 2.0**30
# CUDA context, NCCL communicators and buffers, cuBLAS workspaces, allocator slack: an assumption
# (typical PyTorch + NCCL jobs hold 2-4 GiB outside tensors), documented in docs/model.md.
RUNTIME_RESERVE_BYTES = 3 * GIB

# Optimizer state bytes per parameter, beyond the 2-byte weights and 2-byte gradients.
OPTIMIZER_STATE_BYTES = {
    "adamw": 12.0, "adam": 12.0,   # fp32 master weights, first and second moments
    "sophia": 12.0,                # fp32 master, momentum, diagonal Hessian estimate
    "lion": 8.0,                   # fp32 master, momentum
    "sgd": 8.0,                    # fp32 master, momentum
    "adafactor": 4.0,              # fp32 master; factored second moments are O(rows + cols)
}


@dataclass(frozen=True)
class MemoryBreakdown:
    weights: float
    gradients: float
    optimizer: float
    activations: float
    runtime: float
    stage: int

    @property
    def total(self) -> float:
        return self.weights + self.gradients + self.optimizer + self.activations + self.runtime

    def as_gib(self) -> dict:
        d = {k: v / GIB for k, v in asdict(self).items() if k != "stage"}
        d["total"] = self.total / GIB
        return d


def activation_bytes_per_layer(a: Arch, micro_batch: int, tp: int, cp: int, sequence_parallel: bool,
                               recompute: str, flash_attention: bool, moe: bool = False,
                               fp8: bool = False) -> float:
    """Activation bytes one layer keeps for the backward pass, for one microbatch, on one GPU.

    ``fp8``: the linear layers keep their inputs for the backward pass as the FP8 copies they
    multiplied (Transformer Engine), 1 byte instead of 2: the QKV, output-projection, fc1 and fc2 inputs.
    """
    tokens = micro_batch * a.seq / cp
    h, aw = a.hidden, a.attn_width
    if recompute == "full":
        return 2.0 * tokens * h / (tp if sequence_parallel else 1)
    if moe:
        ffn_tokens, ffn = tokens * a.topk, a.moe_ffn
    else:
        ffn_tokens, ffn = tokens, a.ffn
    up = (2 if a.gated else 1) * ffn
    g = 1.0 if fp8 else 2.0   # bytes of a saved linear-layer input
    # replicated over TP ranks unless sequence parallel: norm inputs, QKV and fc1 inputs, dropout masks
    replicated = tokens * (2 * h + g * h + 2 * h + g * h + h + h)
    # split over TP ranks: Q, K, V, attention output (projection input), activation input, fc2 input
    split = tokens * (2 * a.q_width + 2 * a.kv_width + 2 * a.v_width + g * aw) + ffn_tokens * (2 * up + g * ffn)
    if a.qk_layernorm:
        split += tokens * 2 * (a.q_width + a.kv_width)          # inputs of the per-head q / k norms
    full = 0.0   # kept whole on every TP rank even under sequence parallelism
    if a.mla:
        # the compressed latents are gathered over the SP ranks before the (head-split) up
        # projections: latent-norm inputs, up-projection inputs and the shared rotary key, per rank
        full = tokens * ((2 + g) * (a.q_lora_rank + a.kv_lora_rank) + 2 * a.qk_rope_dim)
    if moe:
        split += tokens * a.num_experts * 4      # router logits (fp32)
        replicated += tokens * a.topk * h * 2     # permuted tokens
    core = 0.0
    if recompute == "none" and not flash_attention:
        # the unfused path materialises every score, sliding window or not (masked)
        core = 5.0 * micro_batch * a.heads * (a.seq / cp) * a.seq   # scores, softmax, dropout mask
    elif flash_attention:
        core = 4.0 * micro_batch * a.heads * (a.seq / cp)            # log-sum-exp statistics (fp32)
    return replicated / (tp if sequence_parallel else 1) + (split + core) / tp + full


def in_flight_microbatches(schedule: str, stage: int, pp: int, m: int, vpp: int) -> float:
    """Microbatches whose activations a stage holds at its peak (Narayanan 2021; Korthikanti 2022)."""
    if schedule == "gpipe":
        return float(m)
    warm = min(m, pp - stage)
    if schedule == "interleaved_1f1b":
        return min(float(m), warm * (1 + (pp - 1) / (pp * vpp)))
    return float(warm)


def stage_params(a: Arch, layers: int, first: bool, last: bool, pp: int) -> tuple[float, float]:
    """(dense parameters, routed-expert parameters) held by a pipeline stage before TP/EP sharding."""
    n_moe = a.moe_layers_in(layers)
    shared, experts = moe_layer_params(a) if a.is_moe else (0, 0)
    dense = (layers - n_moe) * dense_layer_params(a) + n_moe * shared
    if first:
        dense += embedding_params(a)
    experts_mtp = 0
    if last:
        dense += output_params(a)
        if a.tied_embeddings and pp > 1:
            dense += a.vocab * a.hidden   # the last stage keeps its own copy of the tied embedding
        mtp_dense, experts_mtp = mtp_params(a)   # multi-token prediction modules sit on the last stage
        dense += mtp_dense
    return float(dense), float(n_moe * experts + experts_mtp)


def memory_per_gpu(a: Arch, **layout) -> MemoryBreakdown:
    """The breakdown of the stage that needs the most memory (arguments: ``memory_per_stage``)."""
    return max(memory_per_stage(a, **layout), key=lambda mb: mb.total)


def memory_per_stage(a: Arch, *, stage_layers: tuple[int, ...], tp: int, cp: int, ep: int, dp: int,
                     micro_batch: int, num_microbatches: int, schedule: str, vpp: int,
                     sequence_parallel: bool, recompute: str, flash_attention: bool, zero_stage: int,
                     optimizer: str, precision: str = "bf16") -> list[MemoryBreakdown]:
    """The memory breakdown of one GPU of every pipeline stage.

    ``precision="fp8"`` adds the FP8 copies of the transformer layers' weights (1 byte per parameter,
    cached across microbatches by Transformer Engine; the transposed copy Hopper's backward uses is
    not counted) and stores the linear layers' saved inputs in FP8 (``activation_bytes_per_layer``).
    """
    fp8 = is_low_precision(precision)   # FP8 / FP4 recipes: 1-byte copies and saved inputs
    pp = len(stage_layers)
    opt_bytes = OPTIMIZER_STATE_BYTES[optimizer]
    stages: list[MemoryBreakdown] = []
    for i, layers in enumerate(stage_layers):
        dense, experts = stage_params(a, layers, i == 0, i == pp - 1, pp)
        dense_gpu = dense / tp
        expert_gpu = experts / (tp * ep)
        shard_dense, shard_expert = dp * cp, max(dp * cp // ep, 1)
        n = dense_gpu + expert_gpu
        sharded = dense_gpu / shard_dense + expert_gpu / shard_expert
        weights = 2.0 * (sharded if zero_stage >= 3 else n)
        if fp8:   # FP8 copies of the layers' weights (not the embedding or output layer)
            n_moe_w = a.moe_layers_in(layers)
            body = ((layers - n_moe_w) * dense_layer_params(a) + n_moe_w * moe_layer_params(a)[0]) / tp
            weights += (body / shard_dense + expert_gpu / shard_expert) if zero_stage >= 3 else body + expert_gpu
        grads = 2.0 * (sharded if zero_stage >= 2 else n)
        optim = opt_bytes * (sharded if zero_stage >= 1 else n)
        n_moe = a.moe_layers_in(layers)
        per_mb = sum(n * activation_bytes_per_layer(a, micro_batch, tp, cp, sequence_parallel, recompute,
                                                    flash_attention, moe=moe, fp8=fp8)
                     for n, moe in ((layers - n_moe, False), (n_moe, True)) if n)
        tokens = micro_batch * a.seq / cp
        if i == 0:
            per_mb += 2.0 * tokens * a.hidden / (tp if sequence_parallel else 1)
        acts = per_mb * in_flight_microbatches(schedule, i, pp, num_microbatches, vpp)
        if i == pp - 1:
            acts += tokens * a.vocab / tp * (2 + 4)   # bf16 logits and their fp32 copy, one microbatch
            if a.mtp_layers:   # each MTP module: its layer's activations and its logits, per microbatch
                mtp = activation_bytes_per_layer(a, micro_batch, tp, cp, sequence_parallel, recompute,
                                                 flash_attention, moe=a.last_layer_moe, fp8=fp8)
                mtp += 2.0 * 2 * tokens * a.hidden / (tp if sequence_parallel else 1)   # projection input
                acts += a.mtp_layers * (mtp * in_flight_microbatches(schedule, i, pp, num_microbatches, vpp)
                                        + tokens * a.vocab / tp * (2 + 4))
        runtime = RUNTIME_RESERVE_BYTES
        if zero_stage >= 3:
            runtime += 2 * 2.0 * (dense_gpu + expert_gpu) / max(layers, 1)   # two gathered layers
        mb = MemoryBreakdown(weights, grads, optim, acts, runtime, i)
        stages.append(mb)
    return stages
