"""Per-microbatch time of each pipeline stage: compute, recomputation and exposed in-stage comm."""
from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cached_property

from simulator.config.scenario import Scenario
from simulator.cost import comm
from simulator.cost.context import cp_exposed
from simulator.cost.compute import QUANTIZE_SUFFIX, host_launches, host_time, op_time, ops_time, quantize_ops
from simulator.cost.efficiency import Efficiency
from simulator.cost.overlap import overlapped_ep, tp_overlap_exposed
from simulator.memo import by_identity
from simulator.model.arch import Arch, resolve
from simulator.model.recompute import recomputed_fraction, rerun_ops
from simulator.model.memory import GRAD_BYTES, stage_params
from simulator.model.params import tensors_per_layer
from simulator.model.ops import Op, Shard, embedding_ops, head_ops, layer_ops, mtp_ops
from simulator.model.precision import is_low_precision
from simulator.model.routing import dispatch_volume_factor


@dataclass(frozen=True)
class StageTimes:
    """Seconds for one microbatch on one stage, forward + backward, split by cause."""

    compute: float       # forward + backward kernels
    recompute: float     # forward kernels (and their TP comm) re-run in the backward pass
    tp: float            # exposed tensor-parallel collectives
    cp: float            # exposed context-parallel ring exchange
    ep: float            # expert-parallel all-to-all
    fwd: float           # forward part of the total (for overlap windows)
    bwd: float           # backward part of the total
    wgrad: float = 0.0   # weight-gradient GEMMs inside bwd (split off by zero-bubble schedules)
    host_fwd: float = 0.0  # part of compute (in fwd) the GPU waits for the host to launch kernels
    host_bwd: float = 0.0  # the same in bwd
    accum: float = 0.0     # part of compute (in bwd): the unfused gradient-accumulation pass

    @property
    def host(self) -> float:
        return self.host_fwd + self.host_bwd

    @property
    def total(self) -> float:
        return self.compute + self.recompute + self.tp + self.cp + self.ep


def shard_of(s: Scenario) -> Shard:
    lay, t = s.layout, s.workload.training
    return Shard(micro_batch=lay.micro_batch_size, tp=lay.tp, cp=lay.cp, ep=lay.ep,
                 sequence_parallel=lay.sequence_parallel, flash_attention=t.use_flash_attn,
                 act_bytes=2.0, sparse_2to4=t.sparsity_2to4, eager=t.kernel_fusion == "eager",
                 fused_cross_entropy=t.cross_entropy_loss_fusion, attention_kernel=t.attention_kernel,
                 fp8_attention=t.fp8_attention and is_low_precision(t.precision))


LAYER_SCOPES = frozenset({"attn", "mlp", "moe", "moe_router", "moe_preprocess"})


def graphed_scopes(s: Scenario) -> frozenset[str]:
    """The CUDA-graph scopes the workload captures (training.cuda_graph_impl / cuda_graph_scope)."""
    t = s.workload.training
    if t.cuda_graph_impl == "none":
        return frozenset()
    if t.cuda_graph_impl == "full_iteration":
        return frozenset({"full"})
    return frozenset(t.cuda_graph_scope) if t.cuda_graph_scope else LAYER_SCOPES


def host_bound_excess(ops: list[Op], s: Scenario, eff: Efficiency, device_fwd: float,
                      device_bwd: float) -> tuple[float, float]:
    """Seconds by which launching a layer's kernels outlasts running them, forward and backward.

    The host queues kernels ahead of the GPU, so a layer takes max(device time, host launch time);
    Megatron's all-to-all dispatcher syncs on the token counts once per layer, so the host cannot run
    further ahead than a layer and the bound holds layer by layer. Under CUDA_LAUNCH_BLOCKING
    (training.cuda_launch_blocking) each launch waits for its kernel, so host and device time add:
    the whole host time shows."""
    prec, graphed = s.workload.training.precision, graphed_scopes(s)
    hf = host_time(ops, prec, eff, graphed=graphed)
    hb = host_time(ops, prec, eff, backward=True, graphed=graphed)
    if s.workload.training.cuda_launch_blocking:
        return hf, hb
    return max(0.0, hf - device_fwd), max(0.0, hb - device_bwd)


def launch_queue_time(host: list[float], device: list[float]) -> float:
    """Seconds from the host's first launch to the GPU's last kernel end, for kernels launched in order
    from one host thread onto one stream, with the GPU idle at the start (just after a host sync).

    Kernel j starts when it has been launched (the host's first j launch times, ``H_j``) and kernel
    j-1 has finished; so the last one ends at ``max_k (H_k + D_k..n)``, the latest of every "host
    reaches k, then the GPU runs k to the end" path. It is the maximum of the total host time and
    the total device time only when the host keeps ahead throughout; a host-heavy run (many small
    expert GEMMs) followed by a device-heavy one (attention) costs the first's host time plus the
    second's device time."""
    best, h, rest = 0.0, 0.0, sum(device)
    for hk, dk in zip(host, device):
        h += hk
        best = max(best, h + rest)
        rest -= dk
    return best


def _sync_segment(ops: list[Op], device: list[float], s: Scenario, eff: Efficiency) -> tuple[list[float], list[float]]:
    """The forward of an MoE layer in launch order from the dispatcher's host sync on: per op, host
    seconds to launch it and device seconds to run it.

    Megatron-Core's dispatchers (alltoall, flex) need the tokens per expert on the host (the
    all-to-all's split sizes, the grouped GEMM's m_splits): the host blocks on a device-to-host copy
    once per MoE layer, just before the dispatch, and the GPU has then run everything launched before
    it. So a layer's forward, from one sync to the next, is the dispatch, experts and combine, then the
    next layer's attention, norm, router and metadata (identical layers: this layer's own, rotated).
    A recipe's quantize kernels are launched just before their GEMM. CUDA-graphed scopes cost one
    launch per contiguous run."""
    prec, graphed = s.workload.training.precision, graphed_scopes(s)
    casts = {o.name[:-len(QUANTIZE_SUFFIX)]: (o, t) for o, t in zip(ops, device) if o.name.endswith(QUANTIZE_SUFFIX)}
    order: list[tuple[Op, float]] = []
    for o, t in zip(ops, device):
        if o.name.endswith(QUANTIZE_SUFFIX):
            continue
        if o.name in casts:
            order.append(casts[o.name])
        order.append((o, t))
    start = next((i for i, (o, _) in enumerate(order) if o.name == "token_permute"), 0)
    order = order[start:] + order[:start]
    host, dev, prev = [], [], None
    for o, t in order:
        if "full" in graphed or o.scope in graphed:
            host.append(eff.host_launch if o.scope != prev else 0.0)
        else:
            host.append(host_launches(o, prec) * eff.host_launch)
        dev.append(t)
        prev = o.scope
    return host, dev


def every_second_matmul_share(a: Arch) -> dict[str, float]:
    """Share of each fused linear op's forward that reruns when every second matmul of a dense block
    does (``recompute_matmuls: every_second``, torchtitan's op policy). The block issues q, k, v,
    the output projection, then the MLP (gated: gate, up, down; else up, down), and the even ones
    rerun: k (its share of the fused qkv GEMM), the output projection, and the gated MLP's up half of
    fc1, or the plain MLP's down projection (fc2)."""
    k = a.kv_width / (a.attn_width + 2 * a.kv_width)
    return {"qkv": k, "attn_proj": 1.0, "fc1": 0.5 if a.gated else 0.0, "fc2": 0.0 if a.gated else 1.0}


def module_recompute(ops: list[Op], fw: list[float], modules: tuple[str, ...], moe: bool,
                     tp_f: float, ep_f: float) -> float:
    """Forward seconds that selective recomputation of ``modules`` reruns in one layer's backward:
    the ops of model/recompute.rerun_ops, and the collectives of mlp (the MLP side's TP half) and
    moe (that half and the EP all-to-alls)."""
    mods = modules or ("core_attn",)
    member = rerun_ops(ops, mods, moe)
    rec = sum(t for o, t in zip(ops, fw) if o.name in member)
    if ("mlp" in mods and not moe) or ("moe" in mods and moe):
        rec += 0.5 * tp_f          # the MLP side's TP collectives (the attention side has the other half)
    if "moe" in mods and moe:
        rec += ep_f                # dispatch and combine
    return rec


@by_identity(objects=1)   # a frozen Arch and a Shard: the search's layouts share shards
def _layer_ops(a: Arch, sh: Shard, moe: bool) -> tuple[Op, ...]:
    return tuple(layer_ops(a, sh, moe=moe))


def _layer(a: Arch, s: Scenario, sh: Shard, eff: Efficiency, tiers: comm.Tiers, moe: bool) -> StageTimes:
    lay, prec = s.layout, s.workload.training.precision
    gpu = s.gpu
    ops: list[Op] = list(_layer_ops(a, sh, moe))
    ops += quantize_ops(ops, prec, lay.num_microbatches, gpu.fp8_any_layout)
    # each op's forward and backward time once; the sums below add them in op order, as ops_time does
    fw = [op_time(o, gpu, prec, eff) for o in ops]
    bw = [op_time(o, gpu, prec, eff, backward=True) for o in ops]
    f, b = sum(fw), sum(bw)
    attn_f = sum(t for o, t in zip(ops, fw) if o.attention_core)
    attn_b = sum(t for o, t in zip(ops, bw) if o.attention_core)
    tokens = sh.tokens(a)
    act = tokens * a.hidden * sh.act_bytes
    tp_group = comm.Group.of("tp", lay)
    # two all-reduces per layer, each direction; under sequence parallelism each is an all-gather
    # before the column-parallel GEMM and a reduce-scatter after the row-parallel one (Megatron-Core
    # and PyTorch's SequenceParallel alike). Costed as those two: NVLink SHARP halves an all-reduce's
    # bytes per GPU (the switch reduces and multicasts), but an all-gather or a reduce-scatter alone
    # moves (n-1)/n of the buffer per GPU whichever algorithm runs it (cost/comm.py)
    if lay.sequence_parallel:
        gather, scatter = comm.all_gather(tp_group, act, tiers), comm.reduce_scatter(tp_group, act, tiers)
    else:
        gather, scatter = 0.0, comm.all_reduce(tp_group, act, tiers)
    tp_one = 2 * (gather + scatter)
    if s.workload.parallelism.tp_comm_overlap and lay.tp > 1:
        tp_f, tp_b = tp_overlap_exposed(ops, fw, bw, gather, scatter, lay.tp, gpu)
    else:
        tp_f = tp_b = tp_one
    cp_f, cp_b = cp_exposed(s.workload.parallelism.cp_comm_type, lay, tiers, tokens, a.kv_exchange_width,
                            a.q_width, a.attn_width, sh.act_bytes, attn_f, attn_b)
    ep_f = ep_b = 0.0
    if moe and lay.ep > 1:
        routed = tokens * a.topk * a.hidden * sh.act_bytes / (lay.tp if lay.sequence_parallel else 1)
        group = comm.Group.of("ep", lay)
        if group.domains(tiers) > 1:   # DeepEP-style dispatch sends fewer copies across domains
            routed *= dispatch_volume_factor(a, group.domains(tiers))
        ep_f = ep_b = 2 * comm.all_to_all(group, routed, tiers)
        if s.workload.parallelism.overlap_moe_expert_parallel_comm:
            ep_f, ep_b = overlapped_ep(ep_f, ep_b, f + b, gpu.sm_count)
    # a host slower than the layer's kernels (and the collectives on its stream) sets the time
    host_f, host_b = host_bound_excess(ops, s, eff, f + tp_f + cp_f + ep_f, b + tp_b + cp_b + ep_b)
    if moe and not s.workload.training.cuda_launch_blocking and "full" not in graphed_scopes(s):
        # the forward from one dispatcher sync to the next, launched in order (launch_queue_time); the
        # layer's collectives on the stream: TP with the output projection, CP with the attention,
        # the EP all-to-all half with the dispatch and half with the combine (the residual after it)
        dev = list(fw)
        named = {o.name: i for i, o in enumerate(ops)}
        extra = {"attn_proj": tp_f, "token_permute": ep_f / 2, "mlp_residual": ep_f / 2}
        core = next((i for i, o in enumerate(ops) if o.attention_core and o.kind == "gemm"), None)
        if core is not None:
            dev[core] += cp_f
        for name, t in extra.items():
            if name in named:
                dev[named[name]] += t
        hs, ds = _sync_segment(ops, dev, s, eff)
        host_f = max(0.0, launch_queue_time(hs, ds) - sum(ds))
    f, b = f + host_f, b + host_b
    wgrad = 0.5 * sum(t for o, t in zip(ops, bw) if o.kind == "gemm" and not o.attention_core)
    rec = 0.0
    if lay.recompute == "full":
        rec = f + tp_f + cp_f + ep_f
    elif lay.recompute == "selective":
        rec = module_recompute(ops, fw, lay.recompute_modules, moe, tp_f, ep_f)
    elif lay.recompute == "selective_op":   # norms and activation functions rerun (Op.rerun)
        rec = sum(t for o, t in zip(ops, fw) if o.rerun)
        if s.workload.parallelism.recompute_matmuls == "every_second" and not is_low_precision(prec):
            share = every_second_matmul_share(a)
            rec += sum(t * share.get(o.name, 0.0) for o, t in zip(ops, fw))
            # their inputs' collectives rerun with them: the attention's and the MLP's all-gathers
            # under sequence parallelism (k and the gate/up need the gathered input), or the output
            # projection's all-reduce without: half the forward's TP time either way
            rec += 0.5 * tp_f
    return StageTimes(f + b, rec, tp_f + tp_b, cp_f + cp_b, ep_f + ep_b,
                      f + tp_f + cp_f + ep_f, b + rec + tp_b + cp_b + ep_b, wgrad, host_f, host_b)


_FIELDS = ("compute", "recompute", "tp", "cp", "ep", "fwd", "bwd", "wgrad", "host_fwd", "host_bwd", "accum")
ZERO = StageTimes(0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)


def scale(x: StageTimes, k: float) -> StageTimes:
    return StageTimes(*(getattr(x, f) * k for f in _FIELDS))


def add(x: StageTimes, y: StageTimes) -> StageTimes:
    return StageTimes(*(getattr(x, f) + getattr(y, f) for f in _FIELDS))


@dataclass(frozen=True)
class StageParts:
    """A stage's per-microbatch time as its layers plus the embedding / output-layer extras."""

    layers: StageTimes      # all transformer layers of the stage
    head: StageTimes        # embedding (first stage) — runs in the first model chunk
    tail: StageTimes        # final norm, logits, loss (last stage) — runs in the last chunk
    accum: StageTimes = ZERO   # unfused gradient accumulation, after the microbatch's last backward

    @cached_property
    def total(self) -> StageTimes:
        return add(add(add(self.layers, self.head), self.tail), self.accum)


def _extra(ops: list[Op], s: Scenario, eff: Efficiency) -> StageTimes:
    prec = s.workload.training.precision
    ef = ops_time(ops, s.gpu, prec, eff)
    eb = ops_time(ops, s.gpu, prec, eff, backward=True)
    return StageTimes(ef + eb, 0.0, 0.0, 0.0, 0.0, ef, eb)


def local_params(s: Scenario, stage: int) -> tuple[float, float]:
    """(dense, expert) parameters of one GPU of a stage after TP / EP x ETP sharding."""
    lay = s.layout
    a = resolve(s.workload.model)
    pp = len(lay.stage_layers)
    dense, experts = stage_params(a, lay.stage_layers[stage], stage == 0, stage == pp - 1, pp,
                                  a.moe_layers_among(lay.stage_layer_ids(stage)), stage == lay.mtp_rank)
    return dense / lay.tp, experts / (lay.expert_tp * lay.ep)


# Bytes per parameter of the unfused accumulation pass (parallelism.grad_accumulation), with L the
# low-precision gradient the backward writes (2: bf16 / fp16) and G the main gradient (grad_dtype):
# unfused reads L and reads + writes G (Megatron's main_grad.add_(grad) hook); unfused_cast first
# casts L into a G-sized temporary (read L, write G) and then adds it (read both, write G), as
# DeepSpeed's BF16_Optimizer.update_hp_grads does (hp_grad.add_(lp.grad.to(hp_grad.dtype)),
# deepspeed/runtime/bf16_optimizer.py; the pipeline engine calls it after every micro-step's
# backward, deepspeed/runtime/pipe/engine.py _exec_backward_pass).
LOW_GRAD_BYTES = 2.0


def _casts(kind: str, main_bytes: float) -> bool:
    """Whether the pass casts into a temporary first (``.to`` of a tensor already in the main
    gradients' dtype returns it unchanged: no cast kernel)."""
    return kind == "unfused_cast" and main_bytes != LOW_GRAD_BYTES


def accumulation_bytes(kind: str, main_bytes: float) -> float:
    """HBM bytes per parameter of one microbatch's gradient accumulation outside the GEMMs."""
    if kind == "fused":
        return 0.0   # the weight-gradient GEMM accumulates into the main gradient itself
    return LOW_GRAD_BYTES + (4 if _casts(kind, main_bytes) else 2) * main_bytes


def stage_param_tensors(s: Scenario, stage: int) -> int:
    """Parameter tensors one GPU of ``stage`` holds: its layers' (dense count, model/params.py), the
    word embedding and embedding norm on the first stage, the final norm (and the tied copy of the
    embedding) on the last."""
    a, lay = resolve(s.workload.model), s.layout
    norm = 2 if a.layernorm else 1
    n = tensors_per_layer(a) * lay.stage_layers[stage]
    if stage == 0:
        n += 1 + norm * a.embedding_norm + a.learned_positions
    if stage == lay.pp - 1:
        n += norm + (1 if not a.tied_embeddings or lay.pp > 1 else 0)
    return n


def grad_accumulation_time(s: Scenario, stage: int, eff: Efficiency) -> float:
    """Seconds per microbatch that one GPU of ``stage`` spends adding its weight gradients into the
    main gradients outside the GEMMs: a memory-bound pass over its local parameters (ZeRO-2/3: the
    gradient shard it keeps), one or two kernels per parameter tensor (each with its launch gap and
    host launch; the host hides behind the kernels unless CUDA_LAUNCH_BLOCKING serialises them)."""
    kind, main = s.workload.parallelism.grad_accumulation, GRAD_BYTES[s.layout.grad_dtype]
    per_param = accumulation_bytes(kind, main)
    if not per_param:
        return 0.0
    dense, experts = local_params(s, stage)
    params = dense + experts
    if s.layout.zero_stage >= 2:
        params /= max(s.layout.shard, 1)
    # kernels per parameter tensor: the in-place add, after the cast where there is one
    kernels = (2 if _casts(kind, main) else 1) * stage_param_tensors(s, stage)
    device = params * per_param / (s.gpu.hbm_bandwidth * eff.memory) + kernels * eff.kernel_overhead
    host = kernels * eff.host_launch
    return device + host if s.workload.training.cuda_launch_blocking else max(device, host)


def stage_parts(s: Scenario, eff: Efficiency, tiers: comm.Tiers) -> list[StageParts]:
    """Per-microbatch work of every pipeline stage, split into layers, head and tail."""
    a = resolve(s.workload.model)
    sh = shard_of(s)
    dense = _layer(a, s, sh, eff, tiers, moe=False)
    moe = _layer(a, s, sh, eff, tiers, moe=True) if a.is_moe else dense
    pp = len(s.layout.stage_layers)
    out, seen = [], {}   # stages alike (layers, MoE layers, recomputed share, role) share one StageParts
    for i, layers in enumerate(s.layout.stage_layers):
        n_moe = a.moe_layers_among(s.layout.stage_layer_ids(i))   # the layers this stage really holds
        frac = recomputed_fraction(s.layout, i)
        key = (layers, n_moe, frac, i == 0, i == pp - 1, i == s.layout.mtp_rank)
        if key in seen:
            out.append(seen[key])
            continue
        body = add(scale(dense, layers - n_moe), scale(moe, n_moe))
        if s.layout.recompute == "full" and frac < 1.0:   # block method: only some layers rerun
            skipped = body.recompute * (1.0 - frac)
            body = replace(body, recompute=body.recompute - skipped, bwd=body.bwd - skipped)
        head = _extra(embedding_ops(a, sh) if i == 0 else [], s, eff)
        # the last stage runs the output head; the MTP modules run in the last chunk of their stage
        # (the last, or a layout's standalone MTP stage)
        tail = _extra((head_ops(a, sh) if i == pp - 1 else []) + (mtp_ops(a, sh) if i == s.layout.mtp_rank else []),
                      s, eff)
        acc = grad_accumulation_time(s, i, eff)
        accum = StageTimes(acc, 0.0, 0.0, 0.0, 0.0, 0.0, acc, accum=acc) if acc else ZERO
        out.append(seen.setdefault(key, StageParts(body, head, tail, accum)))
    return out


def stage_times(s: Scenario, eff: Efficiency, tiers: comm.Tiers) -> list[StageTimes]:
    """Per-microbatch times of every pipeline stage (first holds the embedding, last the logits)."""
    return [p.total for p in stage_parts(s, eff, tiers)]
