"""Per-microbatch time of each pipeline stage: compute, recomputation and exposed in-stage comm."""
from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cached_property

from simulator.config.scenario import Scenario
from simulator.cost import comm
from simulator.cost.compute import op_time, ops_time
from simulator.cost.efficiency import Efficiency
from simulator.memo import by_identity
from simulator.model.arch import Arch, resolve
from simulator.model.recompute import recomputed_fraction
from simulator.model.ops import Op, Shard, embedding_ops, layer_ops, output_ops
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

    @property
    def total(self) -> float:
        return self.compute + self.recompute + self.tp + self.cp + self.ep


def shard_of(s: Scenario) -> Shard:
    lay, t = s.layout, s.workload.training
    return Shard(micro_batch=lay.micro_batch_size, tp=lay.tp, cp=lay.cp, ep=lay.ep,
                 sequence_parallel=lay.sequence_parallel, flash_attention=t.use_flash_attn,
                 act_bytes=2.0, sparse_2to4=t.sparsity_2to4)


# Transformer Engine's userbuffer TP overlap as NeMo / Megatron-Bridge configure it
# (TransformerLayerTPOverlapCfg presets): the reduce-scatter side (attention projection and fc2
# forward, qkv and fc1 data-gradients backward) runs as a pipelined overlap on 16-32 SMs with an SM
# margin taken from the GEMM (num_sm 24 / 16 for proj / fc2 forward); the all-gather side is a ring
# exchange on copy engines (num_sm 1). 20 SMs is the representative figure.
TP_OVERLAP_SMS = 20
RS_OVERLAPPED_FWD = 0.5    # share of the forward linear-GEMM time overlapped with a reduce-scatter
RS_OVERLAPPED_BWD = 0.25   # backward: the data-gradient half of qkv and fc1 (half of dgrad)


def tp_overlap_steal(gpu) -> float:
    """Fraction of the SMs an overlapped TP reduce-scatter takes from the GEMM it hides behind."""
    return min(0.5, TP_OVERLAP_SMS / (gpu.sm_count or 132))


@by_identity(objects=3)   # frozen Arch, GPU and efficiencies; the search's layouts share shards
def _op_times(a: Arch, gpu, eff: Efficiency, sh: Shard, prec: str, moe: bool) -> tuple:
    """(a layer's ops, each op's forward time, each op's backward time); the sums in ``_layer`` add
    them in op order, as ops_time does."""
    ops: tuple[Op, ...] = tuple(layer_ops(a, sh, moe=moe))
    return (ops, tuple(op_time(o, gpu, prec, eff) for o in ops),
            tuple(op_time(o, gpu, prec, eff, backward=True) for o in ops))


def _layer(a: Arch, s: Scenario, sh: Shard, eff: Efficiency, tiers: comm.Tiers, moe: bool) -> StageTimes:
    lay, prec = s.layout, s.workload.training.precision
    gpu = s.gpu
    ops, fw, bw = _op_times(a, gpu, eff, sh, prec, moe)
    f, b = sum(fw), sum(bw)
    attn_f = sum(t for o, t in zip(ops, fw) if o.attention_core)
    attn_b = sum(t for o, t in zip(ops, bw) if o.attention_core)
    tokens = sh.tokens(a)
    act = tokens * a.hidden * sh.act_bytes
    tp_group = comm.Group.of("tp", lay)
    # two all-reduces (or all-gather + reduce-scatter pairs under SP) per layer, each direction
    tp_one = 2 * comm.all_reduce(tp_group, act, tiers)
    if s.workload.parallelism.tp_comm_overlap and lay.tp > 1:
        gemm_f = sum(t for o, t in zip(ops, fw) if o.kind == "gemm")
        tp_f, tp_b = max(0.0, tp_one - gemm_f), max(0.0, tp_one - 2 * gemm_f)
        # the hidden communication is not free: a reduce-scatter overlapped with its GEMM runs on
        # TP_OVERLAP_SMS of the GPU's SMs, which the GEMM loses while both run
        lin_f = sum(t for o, t in zip(ops, fw) if o.kind == "gemm" and o.linear)
        lin_b = sum(t for o, t in zip(ops, bw) if o.kind == "gemm" and o.linear)
        steal = tp_overlap_steal(gpu)
        tp_f += RS_OVERLAPPED_FWD * lin_f * steal / (1 - steal)
        tp_b += RS_OVERLAPPED_BWD * lin_b * steal / (1 - steal)
    else:
        tp_f = tp_b = tp_one
    cp_f = cp_b = 0.0
    if lay.cp > 1:
        kv = tokens * a.kv_exchange_width / lay.tp * sh.act_bytes
        ring = (lay.cp - 1) * comm.send_recv(lay.tp, kv, tiers, peers=lay.cp)
        cp_f, cp_b = max(0.0, ring - attn_f), max(0.0, 2 * ring - attn_b)
    ep_f = ep_b = 0.0
    if moe and lay.ep > 1:
        routed = tokens * a.topk * a.hidden * sh.act_bytes / (lay.tp if lay.sequence_parallel else 1)
        group = comm.Group.of("ep", lay)
        if group.domains(tiers) > 1:   # DeepEP-style dispatch sends fewer copies across domains
            routed *= dispatch_volume_factor(a, group.domains(tiers))
        ep_f = ep_b = 2 * comm.all_to_all(group, routed, tiers)
    wgrad = 0.5 * sum(t for o, t in zip(ops, bw) if o.kind == "gemm" and not o.attention_core)
    rec = 0.0
    if lay.recompute == "full":
        rec = f + tp_f + cp_f + ep_f
    elif lay.recompute == "selective":
        rec = attn_f
    elif lay.recompute == "selective_op":   # norms and activation functions rerun (memory-bound ops)
        rec = sum(t for o, t in zip(ops, fw) if o.kind == "memory")
    return StageTimes(f + b, rec, tp_f + tp_b, cp_f + cp_b, ep_f + ep_b,
                      f + tp_f + cp_f + ep_f, b + rec + tp_b + cp_b + ep_b, wgrad)


_FIELDS = ("compute", "recompute", "tp", "cp", "ep", "fwd", "bwd", "wgrad")


def scale(x: StageTimes, k: float) -> StageTimes:
    return StageTimes(x.compute * k, x.recompute * k, x.tp * k, x.cp * k, x.ep * k, x.fwd * k, x.bwd * k,
                      x.wgrad * k)


def add(x: StageTimes, y: StageTimes) -> StageTimes:
    return StageTimes(x.compute + y.compute, x.recompute + y.recompute, x.tp + y.tp, x.cp + y.cp, x.ep + y.ep,
                      x.fwd + y.fwd, x.bwd + y.bwd, x.wgrad + y.wgrad)


@dataclass(frozen=True)
class StageParts:
    """A stage's per-microbatch time as its layers plus the embedding / output-layer extras."""

    layers: StageTimes      # all transformer layers of the stage
    head: StageTimes        # embedding (first stage) — runs in the first model chunk
    tail: StageTimes        # final norm, logits, loss (last stage) — runs in the last chunk

    @cached_property
    def total(self) -> StageTimes:
        return add(add(self.layers, self.head), self.tail)


def _extra(ops: list[Op], s: Scenario, eff: Efficiency) -> StageTimes:
    prec = s.workload.training.precision
    ef = ops_time(ops, s.gpu, prec, eff)
    eb = ops_time(ops, s.gpu, prec, eff, backward=True)
    return StageTimes(ef + eb, 0.0, 0.0, 0.0, 0.0, ef, eb)


def stage_parts(s: Scenario, eff: Efficiency, tiers: comm.Tiers) -> list[StageParts]:
    """Per-microbatch work of every pipeline stage, split into layers, head and tail."""
    a = resolve(s.workload.model)
    sh = shard_of(s)
    dense = _layer(a, s, sh, eff, tiers, moe=False)
    moe = _layer(a, s, sh, eff, tiers, moe=True) if a.is_moe else dense
    pp = len(s.layout.stage_layers)
    out, seen = [], {}   # stages alike (layers, recomputed share, first / last) share one StageParts
    for i, layers in enumerate(s.layout.stage_layers):
        frac = recomputed_fraction(s.layout, i)
        key = (layers, frac, i == 0, i == pp - 1)
        if key in seen:
            out.append(seen[key])
            continue
        n_moe = a.moe_layers_in(layers)
        body = add(scale(dense, layers - n_moe), scale(moe, n_moe))
        if s.layout.recompute == "full" and frac < 1.0:   # block method: only some layers rerun
            skipped = body.recompute * (1.0 - frac)
            body = replace(body, recompute=body.recompute - skipped, bwd=body.bwd - skipped)
        head = _extra(embedding_ops(a, sh) if i == 0 else [], s, eff)
        tail = _extra(output_ops(a, sh) if i == pp - 1 else [], s, eff)
        out.append(seen.setdefault(key, StageParts(body, head, tail)))
    return out


def stage_times(s: Scenario, eff: Efficiency, tiers: comm.Tiers) -> list[StageTimes]:
    """Per-microbatch times of every pipeline stage (first holds the embedding, last the logits)."""
    return [p.total for p in stage_parts(s, eff, tiers)]
