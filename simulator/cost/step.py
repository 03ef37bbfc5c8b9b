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
from simulator.cost.stage import StageTimes, stage_times
from simulator.model.arch import resolve
from simulator.model.memory import stage_params
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
    comm_t = 2 * (p - 1) * p2p + 2 * (m - 1) * p2p
    if schedule == "zb_h1":   # weight gradients fill the drain: (p-1)(F+B-W) (Qi et al. 2024)
        b = totals.index(slow)
        fill = sum(t - 2 * st.wgrad for i, (t, st) in enumerate(zip(totals, stages)) if i != b)
        return m * slow + max(fill, 0.0) + comm_t, comm_t
    return (m - 1) * slow + sum(totals) + comm_t, comm_t


@dataclass(frozen=True)
class DPCost:
    """Data-parallel communication of one stage per step, before any overlap."""

    grad: float          # gradient all-reduce (ZeRO-0) or reduce-scatter (ZeRO-1+)
    gather: float        # parameter all-gather after the optimizer (ZeRO-1/2), else 0
    buckets: int         # DDP buckets the stage's parameters fall into
    params: float        # parameters on this GPU (dense + local experts)


def dp_cost(s: Scenario, stage: int, tiers: comm.Tiers) -> DPCost:
    lay = s.layout
    a = resolve(s.workload.model)
    pp = len(lay.stage_layers)
    dense, experts = stage_params(a, lay.stage_layers[stage], stage == 0, stage == pp - 1, pp)
    dense_gpu, expert_gpu = dense / lay.tp, experts / (lay.tp * lay.ep)
    dp_group = comm.Group.of("dp", lay)
    exp_group = comm.Group.of("expert_dp", lay)
    g2 = 2.0   # bf16 gradients and parameters on the wire
    if lay.zero_stage == 0:
        grad = comm.all_reduce(dp_group, dense_gpu * g2, tiers) + comm.all_reduce(exp_group, expert_gpu * g2, tiers)
        gather = 0.0
    else:
        grad = (comm.reduce_scatter(dp_group, dense_gpu * g2, tiers)
                + comm.reduce_scatter(exp_group, expert_gpu * g2, tiers))
        gather = comm.all_gather(dp_group, dense_gpu * g2, tiers) + comm.all_gather(exp_group, expert_gpu * g2, tiers)
        if lay.zero_stage >= 3:
            gather = 0.0   # ZeRO-3 gathers inside the step (zero3_exposed), not after the optimizer
    buckets = max(1, math.ceil((dense_gpu + expert_gpu) / max(BUCKET_PARAMS, 1e6 * lay.dp)))
    return DPCost(grad, gather, buckets, dense_gpu + expert_gpu)


def _dp_times(s: Scenario, st: StageTimes, stage: int, tiers: comm.Tiers) -> tuple[float, float]:
    """(exposed gradient-reduction time, exposed parameter all-gather time) of one stage."""
    lay, par = s.layout, s.workload.parallelism
    if lay.zero_stage >= 3:
        return zero3_exposed(s, stage, st, tiers), 0.0
    c = dp_cost(s, stage, tiers)
    grad_exposed = max(c.grad - st.bwd, c.grad / c.buckets) if par.overlap_grad_reduce else c.grad
    gather_exposed = max(c.gather - st.fwd, c.gather / c.buckets) if par.overlap_param_gather else c.gather
    return grad_exposed, gather_exposed


def zero3_exposed(s: Scenario, stage: int, st: StageTimes, tiers: comm.Tiers) -> float:
    """ZeRO-3: every parameter tensor is all-gathered before each forward, recomputed forward and
    backward, and its gradient reduce-scattered, per microbatch (DeepSpeed fetches tensor by tensor).
    Prefetching hides the bandwidth part behind compute; the per-collective latency is paid in line.
    """
    lay, m = s.layout, s.layout.num_microbatches
    a = resolve(s.workload.model)
    c = dp_cost(s, stage, tiers)
    group, nbytes = comm.Group.of("dp", lay), 2.0 * c.params
    passes = 2 + (lay.recompute == "full")
    tensors = tensors_per_layer(a) * a.num_layers + 2
    per = nbytes / tensors
    one_ag, one_rs = comm.all_gather(group, per, tiers), comm.reduce_scatter(group, per, tiers)
    latency = comm.all_gather(group, 1.0, tiers)
    collectives = tensors * (passes + 1)
    total = m * tensors * (passes * one_ag + one_rs)
    in_line = m * collectives * latency
    return in_line + max(0.0, (total - in_line) - m * st.total)


def optimizer_time(s: Scenario, stage: int, eff: Efficiency, compute_s: float = 0.0) -> float:
    """The optimizer step of one stage: a memory-bound pass over its local parameter shard, plus the
    optimizer's extra work (Sophia's Hessian estimate, model/optimizers.py) charged as its FLOP
    fraction of ``compute_s``, the stage's forward + backward (+ recompute) seconds per step."""
    lay = s.layout
    a = resolve(s.workload.model)
    pp = len(lay.stage_layers)
    dense, experts = stage_params(a, lay.stage_layers[stage], stage == 0, stage == pp - 1, pp)
    local = dense / lay.tp + experts / (lay.tp * lay.ep)
    if lay.zero_stage >= 1:
        local = dense / lay.tp / (lay.dp * lay.cp) + experts / (lay.tp * lay.ep) / max(lay.dp * lay.cp // lay.ep, 1)
    states = OPTIMIZER_STATES[s.workload.training.optimizer.kind]
    per_param = 4 + 8 + 8 * states + 2
    extra = overhead_flops_fraction(s.workload.training.optimizer) * compute_s
    return local * per_param / (s.gpu.hbm_bandwidth * eff.memory) + extra


def p2p_time(s: Scenario, tiers: comm.Tiers) -> float:
    """One activation (or gradient) transfer between neighbouring pipeline stages."""
    lay = s.layout
    if lay.pp == 1:
        return 0.0
    a = resolve(s.workload.model)
    act = lay.micro_batch_size * a.seq / lay.cp * a.hidden * 2.0 / lay.tp   # scatter-gather: 1/t per rank
    return comm.send_recv(comm.Group.of("pp", lay).stride, act, tiers, peers=lay.pp)


def estimate_step(s: Scenario, eff: Efficiency = DEFAULT) -> StepEstimate:
    lay = s.layout
    tiers = comm.tiers_of(s.cluster, s.gpu, eff, s.num_gpus)
    stages = stage_times(s, eff, tiers)
    m = lay.num_microbatches
    p2p = p2p_time(s, tiers)
    pipe, p2p_total = pipeline_time(stages, m, lay.schedule, lay.vpp, p2p)
    b = max(range(len(stages)), key=lambda i: stages[i].total)
    dp = [_dp_times(s, st, i, tiers) for i, st in enumerate(stages)]
    grad_exposed = max(d[0] for d in dp)
    gather_exposed = max(d[1] for d in dp)
    opt = max(optimizer_time(s, i, eff, m * (st.compute + st.recompute)) for i, st in enumerate(stages))
    slow = stages[b]
    work = m * slow.total
    breakdown = {
        "compute": m * slow.compute,
        "recompute": m * slow.recompute,
        "tp_comm": m * slow.tp,
        "cp_comm": m * slow.cp,
        "ep_comm": m * slow.ep,
        "pp_comm": p2p_total,
        "bubble": pipe - work - p2p_total,
        "dp_comm": grad_exposed + gather_exposed,
        "optimizer": opt,
    }
    step = pipe + grad_exposed + gather_exposed + opt
    return StepEstimate(step, breakdown, tuple(stages), b)
