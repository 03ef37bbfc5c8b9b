"""Memory per GPU: model states (weights, gradients, optimizer) and activations, per pipeline stage.

Model states follow mixed-precision Adam accounting with the gradient dtype as a setting: 2 bytes of
bf16/fp16 weights + 2 or 4 bytes of gradients (``grad_dtype``) + K bytes of optimizer state (Adam:
fp32 master, m, v = 12; with fp16 gradients the optimizer also keeps an fp32 copy, +4). This
reproduces Megatron-LM's distributed-optimizer table (docs/source/api-guide/dist_optimizer.md:
bf16 params + fp32 grads 18 / 6 + 12/d bytes, fp16 + fp16 20 / 4 + 16/d) and, with bf16 gradients,
the ZeRO paper's 2 + 2 + K (Rajbhandari et al. 2020). ZeRO-1 / the distributed optimizer shard the
optimizer state over the data-parallel ranks, ZeRO-2 also the gradients, ZeRO-3 / FSDP the weights
too (gathered per layer, freed after the forward unless ``reshard_after_forward`` is off); HSDP shards
over a smaller group. Activations follow Korthikanti et al. 2022 (Table 2), written per tensor so
they generalise to GQA, SwiGLU, MoE and dropout-free models: for a standard GPT layer with dropout
they reduce to s*b*h*(34 + 5*a*s/h) bytes, /t with sequence parallelism, 2*s*b*h under full
recomputation. How many microbatches' activations a stage holds comes from the pipeline schedule's
own task lists (model/schedules.py), the same ones the step DES runs.
"""
from __future__ import annotations

from dataclasses import dataclass, fields

from simulator.model.split import balanced_chunks, layer_ids
from simulator.memo import by_identity
from simulator.model.schedules import peak_live_layers
from simulator.model.arch import Arch
from simulator.model.recompute import module_savings
from simulator.model.params import (
    dense_layer_params, embedding_params, moe_layer_params, mtp_params, output_params,
)

GIB = 2.0**30
# Default runtime reserve (workload memory.runtime_reserve): CUDA context, NCCL communicators and
# buffers, cuBLAS workspaces; an assumption (typical PyTorch + NCCL jobs hold 2-4 GiB outside tensors).
RUNTIME_RESERVE_BYTES = 3 * GIB

# Optimizer state bytes per parameter beyond the weights and gradients (fp32 master + states).
OPTIMIZER_STATE_BYTES = {
    "adamw": 12.0, "adam": 12.0,   # fp32 master weights, first and second moments
    "sophia": 12.0,                # fp32 master, momentum, diagonal Hessian estimate
    "lion": 8.0,                   # fp32 master, momentum
    "sgd": 8.0,                    # fp32 master, momentum
    "adafactor": 4.0,              # fp32 master; factored second moments are O(rows + cols)
}
GRAD_BYTES = {"fp32": 4.0, "bf16": 2.0, "fp16": 2.0}
# fp16 gradients are loss-scaled; the optimizer unscales them into an fp32 copy of its shard
# (Megatron's table: 4 + 16/d bytes for fp16 params and grads)
FP32_GRAD_COPY_BYTES = {"fp32": 0.0, "bf16": 0.0, "fp16": 4.0}
# Low-precision weight copies cached by Transformer Engine per parameter of the linear layers:
# FP8 keeps the quantised weight and its transpose (Hopper's backward GEMM needs the transposed
# operand; MXFP8 keeps row- and column-wise copies with one 1-byte scale per 32 elements each).
LOW_PRECISION_WEIGHT_BYTES = {"fp8": 2.0, "fp8_cs": 2.0, "fp8_ds": 2.0, "fp8_mx": 2.0 + 2.0 / 32,
                              "nvfp4": 1.0 + 2.0 / 16, "mxfp4": 1.0 + 2.0 / 32}


def low_precision(precision: str) -> bool:
    return precision in LOW_PRECISION_WEIGHT_BYTES


def default_grad_dtype(precision: str) -> str:
    """fp16 training keeps fp16 gradients; bf16 and FP8 training accumulate and reduce in fp32."""
    return "fp16" if precision == "fp16" else "fp32"


@dataclass(frozen=True)
class MemoryBreakdown:
    """Bytes one GPU of a pipeline stage holds at its peak, by cause (``total`` sums the HBM terms;
    ``offloaded`` is host memory and is not part of it)."""

    weights: float
    gradients: float
    optimizer: float
    activations: float
    runtime: float
    stage: int
    low_precision_weights: float = 0.0   # FP8/FP4 weight copies (Transformer Engine)
    gather_buffers: float = 0.0          # ZeRO-3/FSDP gathered layers, unsharded gradient bucket
    fragmentation: float = 0.0           # allocator slack on the activations
    offloaded: float = 0.0               # activations held in host memory (CPU offloading)

    @property
    def total(self) -> float:
        return (self.weights + self.gradients + self.optimizer + self.activations + self.runtime
                + self.low_precision_weights + self.gather_buffers + self.fragmentation)

    def as_gib(self) -> dict:
        d = {name: getattr(self, name) / GIB for name in _BREAKDOWN_FIELDS}
        d["total"] = self.total / GIB
        return d


_BREAKDOWN_FIELDS = tuple(f.name for f in fields(MemoryBreakdown) if f.name != "stage")


def activation_bytes_per_layer(a: Arch, micro_batch: int, tp: int, cp: int, sequence_parallel: bool,
                               recompute: str, flash_attention: bool, moe: bool = False,
                               fp8: bool = False, etp: int | None = None,
                               modules: tuple[str, ...] = ()) -> float:
    """Activation bytes one layer keeps for the backward pass, for one microbatch, on one GPU.

    ``fp8``: the linear layers keep their inputs for the backward pass as the FP8 copies they
    multiplied (Transformer Engine), 1 byte instead of 2: the QKV, output-projection, fc1 and fc2 inputs.
    Dropout masks (1 byte per element) are kept only where the probability is above 0: after the
    attention projection and after the MLP (``hidden_dropout``), and on the attention probabilities of
    an unfused kernel (``attention_dropout``; flash attention regenerates its mask from the RNG state).
    ``recompute``: none/selective keep every tensor (selective drops the attention core, which flash
    attention never stores); selective_op keeps matmul and attention outputs and recomputes norms and
    activation functions; full keeps the layer input only. ``etp``: tensor parallelism of the expert
    MLPs (default: ``tp``). ``modules``: under selective, the Megatron-Core recompute_modules
    (default core_attn), each dropping what its rerun rebuilds (``model/recompute.module_savings``).
    """
    tokens = micro_batch * a.seq / cp
    h, aw = a.hidden, a.attn_width
    rep_div = tp if sequence_parallel else 1
    if recompute == "full":
        return 2.0 * tokens * h / rep_div
    mlp_tp = (etp or tp) if moe else tp
    if moe:
        ffn_tokens, ffn = tokens * a.topk, a.moe_ffn
    else:
        ffn_tokens, ffn = tokens, a.ffn
    up = (2 if a.gated else 1) * ffn
    g = 1.0 if fp8 else 2.0   # bytes of a saved linear-layer input
    masks = 2 * h if a.hidden_dropout > 0 else 0.0
    core = 0.0
    mods = (modules or ("core_attn",)) if recompute == "selective" else ()
    if recompute == "selective" and "core_attn" not in mods:
        recompute = "none"   # the attention core is kept as without recomputation
    if recompute == "none" and not flash_attention:
        # scores' softmax output (2 bytes) + dropout mask (1) and dropout output (2) when p > 0
        per = 5.0 if a.attention_dropout > 0 else 2.0
        core = per * micro_batch * a.heads * (a.seq / cp) * a.seq
    elif flash_attention or recompute == "selective_op":
        core = 4.0 * micro_batch * a.heads * (a.seq / cp)            # log-sum-exp statistics (fp32)
    if recompute == "selective_op":
        # layer input and attention-projection output (to rebuild both norms' inputs), Q/K/V, the
        # attention output, fc1's output; norms' outputs and the activation function are recomputed
        replicated = tokens * (2 * h + 2 * h)
        attn_split = tokens * (2 * a.q_width + 2 * a.kv_width + 2 * a.v_width + 2 * aw)
        mlp_split = ffn_tokens * 2 * up
    else:
        # replicated over TP ranks unless sequence parallel: norm inputs, QKV and fc1 inputs, masks
        replicated = tokens * (2 * h + g * h + 2 * h + g * h + masks)
        # split over TP ranks: Q, K, V, attention output (projection input), activation input, fc2 input
        attn_split = tokens * (2 * a.q_width + 2 * a.kv_width + 2 * a.v_width + g * aw)
        if a.qk_layernorm:
            attn_split += tokens * 2 * (a.q_width + a.kv_width)   # inputs of the per-head q / k norms
        mlp_split = ffn_tokens * (2 * up + g * ffn)
        if a.act_clamp and a.gated:
            # the clamp's backward keeps fc1's output (above) and the fused activation keeps the
            # clamped copy it was given (model/ops.py clamp_ops)
            mlp_split += ffn_tokens * 2 * up
    shared_split = 0.0
    if moe:
        attn_split += tokens * a.num_experts * 4      # router logits (fp32)
        replicated += tokens * a.topk * h * 2          # permuted tokens
        if a.shared_expert_ffn and recompute != "selective_op":
            # the shared expert MLP (TP-split like a dense one): fc1's output and fc2's input; its
            # fc1 reads the tensor the router and the dispatcher already keep
            s_ffn = a.shared_expert_ffn
            shared_split = tokens * (2 * (2 if a.gated else 1) * s_ffn + g * s_ffn)
        elif a.shared_expert_ffn:
            shared_split = tokens * 2 * (2 if a.gated else 1) * a.shared_expert_ffn
    if mods:
        replicated, attn_split, mlp_split, shared_split = module_savings(
            a, mods, tokens, ffn_tokens, ffn, g, fp8, moe, replicated, attn_split, mlp_split, shared_split)
    full = 0.0   # kept whole on every TP rank even under sequence parallelism
    if a.mla:
        # the compressed latents are gathered over the SP ranks before the (head-split) up
        # projections: latent-norm inputs, up-projection inputs and the shared rotary key, per rank
        full = tokens * ((2 + g) * (a.q_lora_rank + a.kv_lora_rank) + 2 * a.qk_rope_dim)
    return replicated / rep_div + (attn_split + core + shared_split) / tp + mlp_split / mlp_tp + full


@by_identity(1024, objects=1)   # pure in a frozen Arch and plain values: stages and layouts alike share it
def mean_layer_activation_bytes(a: Arch, layers: int, micro_batch: int, tp: int, cp: int,
                                sequence_parallel: bool, recompute: str, flash_attention: bool,
                                fp8: bool = False, etp: int | None = None, n_moe: float | None = None,
                                modules: tuple[str, ...] = ()) -> float:
    """Activation bytes per layer of a stage of ``layers`` layers of which ``n_moe`` are MoE layers
    (default: the model's average share), for one microbatch on one GPU."""
    n_moe = a.moe_layers_in(layers) if n_moe is None else n_moe
    return sum(k * activation_bytes_per_layer(a, micro_batch, tp, cp, sequence_parallel, recompute,
                                              flash_attention, moe=moe, fp8=fp8, etp=etp, modules=modules)
               for k, moe in ((layers - n_moe, False), (n_moe, True)) if k) / max(layers, 1)


def in_flight_microbatches(schedule: str, stage: int, pp: int, m: int, vpp: int) -> float:
    """Stage-microbatches of activations a stage holds at its peak, from the schedule's task lists
    (equal chunks; model/schedules.py ``peak_live_layers``)."""
    return peak_live_layers(schedule, pp, m, stage, vpp, (1,) * vpp) / vpp


@by_identity(1024, objects=1)
def stage_params(a: Arch, layers: int, first: bool, last: bool, pp: int,
                 n_moe: float | None = None, mtp: bool | None = None) -> tuple[float, float]:
    """(dense parameters, routed-expert parameters) held by a pipeline stage of ``layers`` layers,
    ``n_moe`` of them MoE layers (default: the model's average share), before TP/EP sharding.
    ``mtp``: the stage holds the multi-token prediction modules (default: the last stage does); on
    another stage (a standalone MTP stage) they come with a copy of the output projection."""
    n_moe = a.moe_layers_in(layers) if n_moe is None else n_moe
    mtp = last if mtp is None else mtp
    shared, experts = moe_layer_params(a) if a.is_moe else (0, 0)
    dense = (layers - n_moe) * dense_layer_params(a) + n_moe * shared
    if first:
        dense += embedding_params(a)
    experts_mtp = 0
    if last:
        dense += output_params(a)
        if a.tied_embeddings and pp > 1:
            dense += a.vocab * a.hidden   # the last stage keeps its own copy of the tied embedding
    if mtp and a.mtp_layers:
        mtp_dense, experts_mtp = mtp_params(a)   # multi-token prediction modules (the last stage's by default)
        dense += mtp_dense
        if not last:
            dense += a.vocab * a.hidden   # a standalone MTP stage projects its own logits
    return float(dense), float(n_moe * experts + experts_mtp)


def memory_per_gpu(a: Arch, **layout) -> MemoryBreakdown:
    """The breakdown of the stage that needs the most memory (arguments: ``memory_per_stage``)."""
    return max(memory_per_stage(a, **layout), key=lambda mb: mb.total)


def stage_moe_layers(a: Arch, chunks: tuple[tuple[int, ...], ...]) -> tuple[int, ...]:
    """MoE layers each pipeline stage holds, from its chunks' layer counts (model/split.py order)."""
    return tuple(a.moe_layers_among(ids) for ids in layer_ids(chunks))


def _recomputed(layers: int, recompute: str, method: str | None, num_layers: int | None) -> tuple[float, int]:
    """(layers of a model chunk stored as full-recompute inputs, layers recomputed together in one
    backward) under Megatron's recompute_method."""
    if recompute != "full":
        return 0.0, 0
    n = num_layers or 1
    if (method or "uniform") == "block":
        return float(min(n, layers)), 1
    return float(layers), min(n, layers)


def memory_per_stage(a: Arch, *, stage_layers: tuple[int, ...], tp: int, cp: int, ep: int, dp: int,
                     micro_batch: int, num_microbatches: int, schedule: str, vpp: int,
                     sequence_parallel: bool, recompute: str, flash_attention: bool, zero_stage: int,
                     optimizer: str, precision: str = "bf16", grad_dtype: str | None = None,
                     etp: int | None = None, shard_degree: int | None = None,
                     reshard_after_forward: bool = True, recompute_method: str | None = None,
                     recompute_num_layers: int | None = None, offload_layers: int = 0,
                     runtime_reserve: float = RUNTIME_RESERVE_BYTES,
                     fragmentation: float = 0.0,
                     chunks: tuple[tuple[int, ...], ...] = (), mtp_stage: int = -1,
                     deallocate_pipeline_outputs: bool = True,
                     fused_cross_entropy: bool = False,
                     recompute_modules: tuple[str, ...] = ()) -> list[MemoryBreakdown]:
    """The memory breakdown of one GPU of every pipeline stage.

    ``precision`` fp8/fp8_*/nvfp4 adds the low-precision copies of the transformer layers' weights
    (LOW_PRECISION_WEIGHT_BYTES, cached across microbatches by Transformer Engine) and stores the
    linear layers' saved inputs in FP8 (``activation_bytes_per_layer``). ``shard_degree``: data-parallel
    ranks the model states are sharded over (HSDP; default all of DP). ``offload_layers``: layers whose
    saved activations live in host memory (CPU offloading, no pipeline parallelism); two layers' worth
    stay on the GPU as transfer buffers. ``chunks``: decoder layers of each stage's model chunks (a
    pipeline layout; default each stage's layers balanced over ``vpp`` chunks); the MoE layers of a
    stage are the ones it really holds (leading dense layers sit on the first stages).
    ``deallocate_pipeline_outputs`` (Megatron-Core's key; on in every Megatron-LM training run):
    a model chunk's output tensor is freed once sent to the next stage, only its autograd node is
    kept, so the per-layer activations above are all it holds; off, every in-flight forward of a
    chunk that sends also keeps its output (micro batch x sequence / CP x hidden, bf16, / TP under
    sequence parallelism) until its backward.
    """
    fp8 = low_precision(precision)
    pp = len(stage_layers)
    etp = etp or tp
    gdt = grad_dtype or default_grad_dtype(precision)
    grad_b = GRAD_BYTES[gdt]
    opt_bytes = OPTIMIZER_STATE_BYTES[optimizer] + FP32_GRAD_COPY_BYTES[gdt]
    lp_bytes = LOW_PRECISION_WEIGHT_BYTES.get(precision, 0.0)
    shard = shard_degree or dp
    expert_dp = max(tp * cp * dp // (etp * ep), 1)
    shard_dense = shard * cp
    shard_expert = max(expert_dp * shard // dp, 1)
    mtp_at = mtp_stage if mtp_stage >= 0 else pp - 1
    stage_chunks = chunks or tuple(balanced_chunks(n, vpp) for n in stage_layers)
    moe_counts = stage_moe_layers(a, stage_chunks)
    stages: list[MemoryBreakdown] = []
    middle: dict = {}   # (layers, MoE layers, chunks) -> (a middle stage's breakdown, chunk weights, working)
    for i, layers in enumerate(stage_layers):
        n_moe_i = moe_counts[i]
        inner = 0 < i < pp - 1 and i != mtp_at
        if inner and (layers, n_moe_i, stage_chunks[i]) in middle:
            # a middle stage like one before holds the same states; only its in-flight activations differ
            mb, chunk_weights, working = middle[layers, n_moe_i, stage_chunks[i]]
            acts = peak_live_layers(schedule, pp, num_microbatches, i, vpp, chunk_weights) + working
            stages.append(MemoryBreakdown(mb.weights, mb.gradients, mb.optimizer, acts, runtime_reserve, i,
                                          low_precision_weights=mb.low_precision_weights,
                                          gather_buffers=mb.gather_buffers, fragmentation=fragmentation * acts))
            continue
        dense, experts = stage_params(a, layers, i == 0, i == pp - 1, pp, n_moe_i, i == mtp_at)
        dense_gpu = dense / tp
        expert_gpu = experts / (etp * ep)
        n = dense_gpu + expert_gpu
        sharded = dense_gpu / shard_dense + expert_gpu / shard_expert
        per_layer = n / max(layers, 1)
        gather = 0.0
        if zero_stage >= 3:
            if reshard_after_forward:
                weights = 2.0 * sharded
                gather = 2 * 2.0 * per_layer   # the layer being computed and the prefetched next one
            else:   # gathered at the first forward, kept until the backward: the whole stage
                weights = 2.0 * (sharded + n)
        else:
            weights = 2.0 * n
        lp = 0.0
        if fp8:   # low-precision copies of the layers' weights (not the embedding or output layer)
            n_moe_w = n_moe_i
            body = ((layers - n_moe_w) * dense_layer_params(a) + n_moe_w * moe_layer_params(a)[0]) / tp
            if zero_stage >= 3:   # quantised from each gathered layer, no transpose cache kept
                # (Megatron FSDP: keep_fp8_transpose_cache false in Megatron-Bridge's performance
                # recipes, scripts/performance/utils/helpers.py @ d0d1bb08)
                lp = lp_bytes / 2 * (body / shard_dense + expert_gpu / shard_expert + 2 * per_layer)
            else:
                lp = lp_bytes * (body + expert_gpu)
        if zero_stage >= 2:
            grads = grad_b * sharded
            gather += grad_b * per_layer   # one layer's unsharded gradients before their reduce-scatter
        else:
            grads = grad_b * n
        optim = opt_bytes * (sharded if zero_stage >= 1 else n)

        acts, offloaded, weights_by_chunk, working = _stage_activations(
            a, i, layers, n_moe_i, stage_chunks[i], pp, mtp_at, micro_batch, tp, cp, sequence_parallel, recompute,
            flash_attention, fp8, etp, recompute_method, recompute_num_layers, offload_layers, schedule,
            num_microbatches, vpp, deallocate_pipeline_outputs, fused_cross_entropy, recompute_modules)
        frag = fragmentation * acts
        stages.append(MemoryBreakdown(weights, grads, optim, acts, runtime_reserve, i,
                                      low_precision_weights=lp, gather_buffers=gather,
                                      fragmentation=frag, offloaded=offloaded))
        if inner:
            middle[layers, n_moe_i, stage_chunks[i]] = (stages[-1], tuple(weights_by_chunk), working)
    return stages


@by_identity(4096, objects=1)   # a stage's activations do not depend on its ZeRO stage: the search's
def _stage_activations(a: Arch, i: int, layers: int, n_moe_i: int, chunks_i: tuple[int, ...], pp: int, mtp_at: int,
                       micro_batch: int, tp: int, cp: int, sequence_parallel: bool, recompute: str,
                       flash_attention: bool, fp8: bool, etp: int, recompute_method: str | None,
                       recompute_num_layers: int | None, offload_layers: int, schedule: str,
                       num_microbatches: int, vpp: int,
                       deallocate_pipeline_outputs: bool,
                       fused_cross_entropy: bool = False,
                       recompute_modules: tuple[str, ...] = ()) -> tuple[float, float, tuple[float, ...], float]:
    """(activation bytes, offloaded bytes, stored bytes per model chunk, working bytes) of pipeline
    stage ``i`` (see ``memory_per_stage``); ZeRO variants of a layout share it."""
    def per_layer_act(rec: str) -> float:
        return mean_layer_activation_bytes(a, layers, micro_batch, tp, cp, sequence_parallel, rec,
                                           flash_attention, fp8, etp, n_moe_i, recompute_modules)

    stored = per_layer_act("selective" if recompute == "full" else recompute)
    full_in = per_layer_act("full") if recompute == "full" else 0.0
    weights_by_chunk, working, by_size = [], 0.0, {}
    kept_output = 0.0 if deallocate_pipeline_outputs or pp == 1 else (
        2.0 * micro_batch * a.seq / cp * a.hidden / (tp if sequence_parallel else 1))
    last_chunk = len(chunks_i) - 1
    for c, cl in enumerate(chunks_i):
        if cl not in by_size:   # a stage's chunks come in few sizes
            kept = cl
            if i == 0 and pp == 1 and offload_layers:
                kept = max(cl - offload_layers, 0)
            rec_layers, together = _recomputed(kept, recompute, recompute_method, recompute_num_layers)
            if recompute == "full" and (recompute_method or "uniform") == "uniform":
                # one checkpointed input per group of `together` layers
                groups = -(-kept // max(together, 1)) if kept else 0
                weight = groups * full_in
            else:
                weight = rec_layers * full_in + (kept - rec_layers) * stored
            by_size[cl] = (weight, together * stored)   # a recomputed group's activations in backward
        weight, work = by_size[cl]
        if not (i == pp - 1 and c == last_chunk):   # the loss chunk sends nothing on
            weight += kept_output
        weights_by_chunk.append(weight)
        working = max(working, work)
    live = peak_live_layers(schedule, pp, num_microbatches, i, vpp, tuple(weights_by_chunk))
    acts = live + working
    offloaded = 0.0
    if i == 0 and pp == 1 and offload_layers:
        off = min(offload_layers, layers)
        offloaded = off * stored
        acts += min(off, 2) * stored   # transfer buffers: the layer going out and the one coming back
    tokens = micro_batch * a.seq / cp
    if i == 0:
        acts += 2.0 * tokens * a.hidden / (tp if sequence_parallel else 1)
    if i == pp - 1:
        # bf16 logits and their fp32 copy, one microbatch; the fused loss keeps the bf16 logits alone
        # (its gradient is written over them) and three fp32 numbers per token
        acts += tokens * a.vocab / tp * (2 if fused_cross_entropy else 2 + 4)
    if i == mtp_at:
        if a.mtp_layers:   # each MTP module: its layer's activations and its logits
            mtp = activation_bytes_per_layer(a, micro_batch, tp, cp, sequence_parallel, recompute,
                                             flash_attention, moe=a.last_layer_moe, fp8=fp8, etp=etp,
                                             modules=recompute_modules)
            mtp += 2.0 * 2 * tokens * a.hidden / (tp if sequence_parallel else 1)   # projection input
            held = in_flight_microbatches(schedule, i, pp, num_microbatches, vpp)
            acts += a.mtp_layers * (mtp * held + tokens * a.vocab / tp * (2 + 4))
    return acts, offloaded, tuple(weights_by_chunk), working
