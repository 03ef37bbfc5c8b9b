"""Closed-form step time: pipeline schedule over the stage times, plus exposed DP comm and optimizer.

This is the fast analytical tier (used by `trainsim run --fast` and the search's first pass); the
discrete-event engine builds the same step from the same cost functions and must agree with it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from simulator.config.scenario import Scenario
from simulator.cost import comm
from simulator.cost.efficiency import DEFAULT, Efficiency
from simulator.cost.overlap import sm_stolen
from simulator.cost.stage import StageTimes, local_params, stage_times
from simulator.model.arch import resolve
from simulator.model.memory import (
    FP32_GRAD_COPY_BYTES, GRAD_BYTES, low_precision, mean_layer_activation_bytes,
)
from simulator.model.optimizers import overhead_flops_fraction
from simulator.model.params import tensors_per_layer

# Megatron-LM DDP bucket size: max(40M, 1M x DP) parameters (DistributedDataParallelConfig).
BUCKET_PARAMS = 40e6
# Optimizer HBM traffic per parameter of the local shard: read fp32 main grad (4), read + write
# fp32 master (8) and each fp32 state (8 per state), write bf16 weights (2).
OPTIMIZER_STATES = {"adamw": 2, "adam": 2, "sophia": 2, "lion": 1, "sgd": 1, "adafactor": 0.5}


@dataclass(frozen=True)
class StepEstimate:
    step_time: float
    breakdown: dict = field(default_factory=dict)   # seconds per cause, summing to step_time
    stages: tuple[StageTimes, ...] = ()
    bottleneck_stage: int = 0


def pipeline_time(stages: list[StageTimes], m: int, schedule: str, vpp: int, p2p: float) -> tuple[float, float]:
    """(time from first forward to last backward, of which point-to-point transfers).

    1F1B and GPipe: (m-1) x slowest stage + sum of stages (= (m+p-1) x T for equal stages, bubble
    (p-1)/(m+p-1)); interleaved with v chunks shrinks the fill/drain to (p-1)/v stage-times
    (Narayanan et al. 2021). Transfers: fill and drain always; each steady-state microbatch also
    waits for its blocking send/recv pair unless the schedule overlaps them (interleaved).
    """
    p = len(stages)
    totals = [st.total for st in stages]
    slow = max(totals)
    if p == 1:
        return m * slow, 0.0
    if schedule == "interleaved_1f1b":
        fill = (sum(totals) - slow) / vpp
        comm_t = 2 * (p - 1) * p2p
        return m * slow + fill + comm_t, comm_t
    # the slowest stage waits for a steady-state transfer only where its neighbours' slack (it is
    # slower than the next-slowest stage by that much per microbatch) does not already cover it
    # (uneven stages: the step DES shows the faster stages' sends arriving early)
    b = totals.index(slow)
    slack = slow - max(t for i, t in enumerate(totals) if i != b)
    comm_t = 2 * (p - 1) * p2p + 2 * (m - 1) * max(0.0, p2p - slack / 2)
    if schedule == "zb_h1":   # weight gradients fill the drain: (p-1)(F+B-W) (Qi et al. 2024)
        fill = sum(t - 2 * st.wgrad for i, (t, st) in enumerate(zip(totals, stages)) if i != b)
        return m * slow + max(fill, 0.0) + comm_t, comm_t
    return (m - 1) * slow + sum(totals) + comm_t, comm_t


@dataclass(frozen=True)
class DPCost:
    """Data-parallel communication of one stage per step, before any overlap."""

    grad: float          # gradient all-reduce (ZeRO-0) or reduce-scatter (ZeRO-1+), whole step
    gather: float        # parameter all-gather after the optimizer (ZeRO-1/2), else 0
    buckets: int         # DDP buckets the stage's parameters fall into
    params: float        # parameters on this GPU (dense + local experts)
    per_microbatch: bool = False   # ZeRO-2/3: each microbatch's gradients are reduced as they appear
    tied: float = 0.0    # tied-embedding gradient all-reduce (first / last stage), after the backward


def grad_bytes(s: Scenario) -> float:
    """Bytes per gradient element accumulated, reduced and read by the optimizer (training.grad_dtype)."""
    return GRAD_BYTES[s.layout.grad_dtype]


def _groups(lay) -> tuple[comm.Group, comm.Group, comm.Group, comm.Group]:
    """(dense shard group, dense replica group, expert shard group, expert replica group).

    Under HSDP (``data_parallel_shard_degree`` < DP) model states are sharded over the first
    ``shard`` data-parallel ranks of a block and replicated across blocks (Megatron order puts
    data-parallel neighbours ``stride`` ranks apart)."""
    dp_group = comm.Group.of("dp", lay)
    exp_group = comm.Group.of("expert_dp", lay)
    d = lay.shard
    shard = comm.Group(d, dp_group.stride)
    replica = comm.Group(dp_group.size // d, dp_group.stride * d)
    ed = max(exp_group.size * d // max(lay.dp, 1), 1)
    eshard = comm.Group(ed, exp_group.stride)
    ereplica = comm.Group(max(exp_group.size // ed, 1), exp_group.stride * ed)
    return shard, replica, eshard, ereplica


def dp_cost(s: Scenario, stage: int, tiers: comm.Tiers) -> DPCost:
    lay = s.layout
    dense_gpu, expert_gpu = local_params(s, stage)
    shard, replica, eshard, ereplica = _groups(lay)
    gb, pb = grad_bytes(s), 2.0   # gradients in grad_dtype, bf16 parameters on the wire
    if lay.zero_stage == 0 or s.workload.parallelism.grad_reduce_op == "all_reduce":
        # the whole gradient all-reduced: ZeRO-0, or ZeRO-1 over an unsharded gradient buffer
        grad = (comm.all_reduce(comm.Group.of("dp", lay), dense_gpu * gb, tiers)
                + comm.all_reduce(comm.Group.of("expert_dp", lay), expert_gpu * gb, tiers))
    else:
        grad = (comm.reduce_scatter(shard, dense_gpu * gb, tiers) + comm.reduce_scatter(eshard, expert_gpu * gb, tiers)
                + comm.all_reduce(replica, dense_gpu * gb / shard.size, tiers)
                + comm.all_reduce(ereplica, expert_gpu * gb / eshard.size, tiers))
    # the updated shards all-gathered after the optimizer: ZeRO-1/2 (ZeRO-0 holds every parameter;
    # ZeRO-3 gathers inside the step, zero3_exposed)
    gather = (comm.all_gather(shard, dense_gpu * pb, tiers) + comm.all_gather(eshard, expert_gpu * pb, tiers)
              if lay.zero_stage in (1, 2) else 0.0)
    per_mb = lay.zero_stage >= 2 and lay.num_microbatches > 1
    if per_mb:
        grad *= lay.num_microbatches
    buckets = max(1, math.ceil((dense_gpu + expert_gpu) / max(BUCKET_PARAMS, 1e6 * lay.dp)))
    return DPCost(grad, gather, buckets, dense_gpu + expert_gpu, per_mb, tied_embedding_reduce(s, stage, tiers))


def tied_embedding_reduce(s: Scenario, stage: int, tiers: comm.Tiers) -> float:
    """The tied word embedding's gradient all-reduce between the first and the last pipeline stage,
    which both hold a copy when PP > 1 (Megatron's embedding group, _allreduce_word_embedding_grads;
    DeepSpeed's ReduceTiedGrads, pipe/engine.py _exec_reduce_tied_grads): each GPU's vocab / TP rows of
    main gradients, once per step after the last backward and outside the DP overlap (it is issued
    when the gradients are final). Zero on the other stages, with untied embeddings or without PP."""
    lay = s.layout
    a = resolve(s.workload.model)
    if lay.pp == 1 or not a.tied_embeddings or stage not in (0, lay.pp - 1):
        return 0.0
    pp = comm.Group.of("pp", lay)
    pair = comm.Group(2, pp.stride * (lay.pp - 1))   # the first and the last stage of one pipeline
    return comm.all_reduce(pair, a.vocab * a.hidden / lay.tp * grad_bytes(s), tiers)


def dp_sm_share(s: Scenario) -> float:
    """Fraction of the GPU's SMs the overlapped ZeRO-2/3 collectives take from compute
    (``parallelism.dp_comm_sms``; 0: the overlap is free)."""
    return s.workload.parallelism.dp_comm_sms / (s.gpu.sm_count or 132)


def grad_exposed(c: DPCost, st: StageTimes, m: int, overlap: bool, sm_share: float = 0.0) -> float:
    """Exposed gradient reduction of one stage. Once per step (ZeRO-0/1): it overlaps the last
    microbatch's backward, bucket by bucket. Per microbatch (ZeRO-2/3, ``c.per_microbatch``): each
    microbatch's reduce-scatter runs on the communication stream behind the rest of the step, so
    only a backlog beyond the stage's work, or the last microbatch's tail, shows; with
    ``sm_share`` > 0 (``dp_comm_sms``) the compute they hide behind also slows by the SMs they take
    (``sm_stolen``), charged here with them."""
    if not overlap:
        return c.grad
    if c.per_microbatch:
        one = c.grad / m
        work = m * st.total
        extra = sm_stolen(c.grad, work, sm_share)
        return extra + max(one - st.bwd, one / c.buckets, c.grad - work - extra)
    return max(c.grad - st.bwd, c.grad / c.buckets)


def _dp_times(s: Scenario, st: StageTimes, stage: int, tiers: comm.Tiers, eff: Efficiency) -> tuple[float, float]:
    """(exposed gradient-reduction time, exposed parameter all-gather time) of one stage."""
    lay, par = s.layout, s.workload.parallelism
    if lay.zero_stage >= 3:
        return zero3_exposed(s, stage, st, tiers, eff) + tied_embedding_reduce(s, stage, tiers), 0.0
    c = dp_cost(s, stage, tiers)
    grad = grad_exposed(c, st, lay.num_microbatches, par.overlap_grad_reduce, dp_sm_share(s)) + c.tied
    gather_exposed = max(c.gather - st.fwd, c.gather / c.buckets) if par.overlap_param_gather else c.gather
    return grad, gather_exposed


def zero3_exposed(s: Scenario, stage: int, st: StageTimes, tiers: comm.Tiers, eff: Efficiency) -> float:
    """ZeRO-3 / FSDP communication that the step waits for, on one stage.

    FSDP gathers one flat parameter per wrapped unit (a transformer layer; the embedding and output
    layer are units of their own) and prefetches the next unit's gather behind the current unit's
    compute (FSDP1 backward_prefetch / FSDP2's default prefetch of one unit) on its own stream, so
    the step waits for the first gather, the last reduce-scatter, and whatever communication a
    microbatch needs beyond its compute; recomputation and backward share one gather. Each microbatch's gradients are reduce-scattered unit by unit behind
    the backward (and all-reduced across HSDP replicas). With ``reshard_after_forward`` off the
    backward needs no second gather, and with pipeline parallelism the stage's parameters stay
    gathered for the whole step (one gather per step).
    """
    lay, m = s.layout, s.layout.num_microbatches
    layers = max(lay.stage_layers[stage], 1)
    dense_gpu, expert_gpu = local_params(s, stage)
    shard, replica, eshard, ereplica = _groups(lay)
    units = layers + (stage == 0) + (stage == lay.pp - 1)
    gb = grad_bytes(s)
    dense_u, expert_u = dense_gpu / units, expert_gpu / units
    ag = comm.all_gather(shard, 2.0 * dense_u, tiers) + comm.all_gather(eshard, 2.0 * expert_u, tiers)
    rs = (comm.reduce_scatter(shard, gb * dense_u, tiers) + comm.reduce_scatter(eshard, gb * expert_u, tiers)
          + comm.all_reduce(replica, gb * dense_u / shard.size, tiers)
          + comm.all_reduce(ereplica, gb * expert_u / eshard.size, tiers))
    if s.workload.parallelism.fsdp_unit == "tensor":
        return _per_tensor_exposed(s, st, shard, dense_gpu + expert_gpu, tiers, eff)
    ag_all, rs_all = units * ag, units * rs
    share = dp_sm_share(s)   # the SMs the hidden collectives take from the compute (dp_comm_sms)
    if not lay.reshard_after_forward and lay.pp > 1:
        # gathered during the first forward and kept for the step; each microbatch's gradients then
        # reduce-scatter behind the rest of the step: only a backlog and the last unit's tail show
        work = m * st.total
        gather = ag + max(0.0, ag_all - ag - st.fwd)
        extra = sm_stolen(min(ag_all - ag, st.fwd) + m * rs_all, work, share)
        return extra + gather + max(rs, m * rs_all - work - extra)
    # per microbatch: gathers for the forward (and again for the backward when resharded) and the
    # gradients' reduce-scatters share the network behind the microbatch's compute (prefetching one
    # unit ahead); the first gather and the last reduce-scatter cannot hide
    per_mb = ag_all * (1 if not lay.reshard_after_forward else 2) + rs_all
    extra = sm_stolen(per_mb, st.total, share)
    return ag + rs + m * (extra + max(0.0, per_mb - st.total - extra))


# DeepSpeed ZeRO-3 as of 2021 (v0.3.x on PyTorch 1.8), measured and read from its sources:
# - each parameter's all-gather is synchronous: its nominally asynchronous path synchronised the
#   device after every all-gather (reported in deepspeedai/DeepSpeed PR #1188, June 2021), so the
#   gathers do not hide behind compute;
# - each costs ~380 us of host time beyond NCCL (pre-launch ~130 us + launch ~250 us per parameter
#   all-gather, 8 x A100, DeepSpeed 0.3.16: deepspeedai/DeepSpeed issue #1069);
# - it gathers into a list of one tensor per rank, which torch.distributed runs as a flat NCCL
#   all-gather followed by one copy per rank (and a list reduce-scatter as one copy per rank before
#   it; pytorch/pytorch torch/csrc/distributed/c10d/ProcessGroupNCCL.cpp, allgather / reduce_scatter;
#   DeepSpeed PRs #1188 and #4705 removed those copies later). Each copy is an ATen op dispatched from
#   C++ plus a launch: 5 us taken, the top of the 2-5 us back-to-back launch gap (an assumption).
#   Together the copies move the whole buffer once more through HBM (read the flat buffer, write the
#   list; for the reduce-scatter, read the list, write the flat input): a memory-bound pass
#   (list_copy_time).
DEEPSPEED_GATHER_HOST_S = 380e-6
LIST_COPY_S = 5e-6


def list_copy_time(group: comm.Group, nbytes: float, s: Scenario, eff: Efficiency) -> float:
    """The per-rank copies torch.distributed adds to a list all-gather or reduce-scatter of an
    ``nbytes`` buffer: one launch per rank and one read + one write of the buffer in HBM."""
    return group.size * LIST_COPY_S + 2.0 * nbytes / (s.gpu.hbm_bandwidth * eff.memory)


def _per_tensor_exposed(s: Scenario, st: StageTimes, group: comm.Group, params: float,
                        tiers: comm.Tiers, eff: Efficiency) -> float:
    """ZeRO-3 fetching tensor by tensor, as DeepSpeed did in 2021 (constants above): every parameter
    tensor is all-gathered before each forward, recomputed forward and backward, and its gradient
    reduce-scattered, per microbatch. The gathers are synchronous (NCCL time, the host's fetch cost
    and the per-rank copies, in line); the reduce-scatters run behind the backward on the
    communication stream, their latency and copy launches in line, their bandwidth and the copies'
    HBM pass hidden where the compute covers them."""
    lay, m = s.layout, s.layout.num_microbatches
    a = resolve(s.workload.model)
    nbytes = 2.0 * params
    passes = 2 + (lay.recompute == "full")
    tensors = tensors_per_layer(a) * a.num_layers + 2
    per = nbytes / tensors
    grad = per * grad_bytes(s) / 2
    gather = comm.all_gather(group, per, tiers) + DEEPSPEED_GATHER_HOST_S + list_copy_time(group, per, s, eff)
    rs_latency, rs_bandwidth = comm.gather_parts(group, grad, tiers)
    rs_launches = group.size * LIST_COPY_S
    rs_hidden = rs_bandwidth + list_copy_time(group, grad, s, eff) - rs_launches
    in_line = m * tensors * (passes * gather + rs_latency + rs_launches)
    return in_line + max(0.0, m * tensors * rs_hidden - m * st.total)


def optimizer_time(s: Scenario, stage: int, eff: Efficiency, compute_s: float = 0.0) -> float:
    """The optimizer step of one stage: a memory-bound pass over its local parameter shard, plus the
    optimizer's extra work (Sophia's Hessian estimate, model/optimizers.py) charged as its FLOP
    fraction of ``compute_s``, the stage's forward + backward (+ recompute) seconds per step."""
    lay = s.layout
    dense, experts = local_params(s, stage)
    local = dense + experts
    if lay.zero_stage >= 1:
        expert_dp = max(lay.tp * lay.cp * lay.dp // (lay.expert_tp * lay.ep), 1)
        local = dense / (lay.shard * lay.cp) + experts / max(expert_dp * lay.shard // lay.dp, 1)
    states = OPTIMIZER_STATES[s.workload.training.optimizer.kind]
    # read the main gradient (fp16 gradients: unscale into an fp32 copy, write + read it), read and
    # write the fp32 master and each fp32 state, write the bf16 weights
    gb = grad_bytes(s) + 2 * FP32_GRAD_COPY_BYTES[lay.grad_dtype]
    per_param = gb + 8 + 8 * states + 2
    extra = overhead_flops_fraction(s.workload.training.optimizer) * compute_s
    return local * per_param / (s.gpu.hbm_bandwidth * eff.memory) + extra


# Host DMA copies reach about this fraction of the link's line rate (PCIe protocol overhead and DMA
# efficiency; an assumption in the 0.8-0.9 range that H2D/D2H copy benchmarks show, docs/model.md).
HOST_DMA_EFFICIENCY = 0.85


def offload_exposed(s: Scenario, st: StageTimes) -> float:
    """Activation CPU offloading: each microbatch's offloaded activations go to host memory during
    the forward and come back during the backward on copy streams; what a direction's transfer needs
    beyond that pass's compute is exposed (Megatron overlaps the copies with the next layers)."""
    lay = s.layout
    if not lay.offload_layers:
        return 0.0
    a = resolve(s.workload.model)
    rec = "selective" if lay.recompute == "full" else lay.recompute
    layers = lay.stage_layers[0]
    per_layer = mean_layer_activation_bytes(a, layers, lay.micro_batch_size, lay.tp, lay.cp, lay.sequence_parallel,
                                            rec, s.workload.training.use_flash_attn,
                                            low_precision(s.workload.training.precision), lay.expert_tp,
                                            a.moe_layers_among(lay.stage_layer_ids(0)), lay.recompute_modules)
    off = min(lay.offload_layers, layers) * per_layer   # as model/memory.py counts them
    xfer = off / (s.gpu.host_bandwidth * HOST_DMA_EFFICIENCY)
    return lay.num_microbatches * (max(0.0, xfer - st.fwd) + max(0.0, xfer - st.bwd))


def p2p_time(s: Scenario, tiers: comm.Tiers) -> float:
    """One activation (or gradient) transfer between neighbouring pipeline stages."""
    lay = s.layout
    if lay.pp == 1:
        return 0.0
    a = resolve(s.workload.model)
    act = lay.micro_batch_size * a.seq / lay.cp * a.hidden * 2.0 / lay.tp   # scatter-gather: 1/t per rank
    return comm.send_recv(comm.Group.of("pp", lay).stride, act, tiers, peers=lay.pp)


def _per_stage(s: Scenario, stages, fn) -> list:
    """``fn(i, stages[i])`` for every stage, computed once for stages alike: what a stage holds
    depends only on its layer count, its MoE layers, whether it is first, last or holds the MTP
    modules, and its times."""
    lay, a = s.layout, resolve(s.workload.model)
    pp, seen, out = len(stages), {}, []
    for i, st in enumerate(stages):
        key = (lay.stage_layers[i], a.moe_layers_among(lay.stage_layer_ids(i)), i == 0, i == pp - 1,
               i == lay.mtp_rank, st)
        if key not in seen:
            seen[key] = fn(i, st)
        out.append(seen[key])
    return out


def estimate_step(s: Scenario, eff: Efficiency = DEFAULT, stages: list[StageTimes] | None = None) -> StepEstimate:
    """The closed-form step of ``s``. ``stages``: its ``stage_times``, when the caller has them
    (the search's ZeRO variants of one shape and recomputation share them: no stage time reads
    the ZeRO stage)."""
    lay = s.layout
    tiers = comm.tiers_of(s.cluster, s.gpu, eff, s.num_gpus)
    if stages is None:
        stages = stage_times(s, eff, tiers)
    m = lay.num_microbatches
    p2p = p2p_time(s, tiers)
    pipe, p2p_total = pipeline_time(stages, m, lay.schedule, lay.vpp, p2p)
    b = max(range(len(stages)), key=lambda i: stages[i].total)
    dp = _per_stage(s, stages, lambda i, st: _dp_times(s, st, i, tiers, eff))
    grad_exposed = max(d[0] for d in dp)
    gather_exposed = max(d[1] for d in dp)
    opt = max(_per_stage(s, stages, lambda i, st: optimizer_time(s, i, eff, m * (st.compute + st.recompute))))
    offload = offload_exposed(s, stages[0])
    slow = stages[b]
    work = m * slow.total
    breakdown = {
        "compute": m * (slow.compute - slow.host - slow.accum),
        "recompute": m * slow.recompute,
        "tp_comm": m * slow.tp,
        "cp_comm": m * slow.cp,
        "ep_comm": m * slow.ep,
        "pp_comm": p2p_total,
        "bubble": pipe - work - p2p_total,
        "dp_comm": grad_exposed + gather_exposed,
        "optimizer": opt,
    }
    if slow.host > 0:   # the GPU waiting for the host to launch kernels (part of the layers' time)
        breakdown["host_bound"] = m * slow.host
    if slow.accum > 0:  # the unfused gradient-accumulation passes (part of the stage's compute)
        breakdown["grad_accum"] = m * slow.accum
    if offload:
        breakdown["offload"] = offload
    step = pipe + grad_exposed + gather_exposed + opt + offload
    return StepEstimate(step, breakdown, tuple(stages), b)
