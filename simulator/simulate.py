"""simulate(): Scenario -> Result, through the model maths and the cost model."""
from __future__ import annotations

from simulator.config.sanity import check_step_time
from simulator.config.scenario import Scenario
from simulator.cost.efficiency import DEFAULT, Efficiency
from simulator.cost.step import estimate_step
from dataclasses import dataclass

from simulator.engine.campaign import run_campaign
from simulator.engine.campaign_plan import campaign_params
from simulator.engine.phases import run_phases
from simulator.engine.iteration import simulate_step
from simulator.metrics.energy import account, combine
from simulator.metrics.power import average_step_power, campaign_levels, power_model_of, step_power
from simulator.errors import ConfigError, InfeasibleError
from simulator.limits import MAX_DES_PASSES
from simulator.metrics.result import Result, mtbf_hours
from simulator.model.arch import resolve
from simulator.model.flops import model_flops_per_token, recompute_flops_per_token
from simulator.model.memory import GIB, MemoryBreakdown, memory_per_stage
from simulator.model.params import count
from simulator.model.recompute import recomputed_fraction
from simulator.model.optimizers import overhead_flops_fraction, steps_factor
from simulator.model.training import TrainingPlan, plan

_DERIVED = {"model.ffn_hidden_size": "ffn", "model.num_query_groups": "query_groups",
            "model.kv_channels": "kv_channels"}


def memory_of(s: Scenario) -> MemoryBreakdown:
    """The memory breakdown of the pipeline stage that needs the most."""
    return max(stage_memory(s), key=lambda mb: mb.total)


def stage_memory(s: Scenario) -> list[MemoryBreakdown]:
    lay, t = s.layout, s.workload.training
    return memory_per_stage(
        resolve(s.workload.model), stage_layers=lay.stage_layers, tp=lay.tp, cp=lay.cp, ep=lay.ep,
        dp=lay.dp, micro_batch=lay.micro_batch_size, num_microbatches=lay.num_microbatches,
        schedule=lay.schedule, vpp=lay.vpp, sequence_parallel=lay.sequence_parallel,
        recompute=lay.recompute, flash_attention=t.use_flash_attn, zero_stage=lay.zero_stage,
        optimizer=t.optimizer.kind, precision=t.precision, grad_dtype=lay.grad_dtype, etp=lay.expert_tp,
        shard_degree=lay.shard, reshard_after_forward=lay.reshard_after_forward,
        recompute_method=lay.recompute_method, recompute_num_layers=lay.recompute_num_layers,
        offload_layers=lay.offload_layers, runtime_reserve=s.workload.memory.runtime_reserve,
        fragmentation=s.workload.memory.fragmentation,
        chunks=tuple(lay.chunk_layers(i) for i in range(lay.pp)), mtp_stage=lay.mtp_stage,
        deallocate_pipeline_outputs=s.workload.memory.deallocate_pipeline_outputs,
        fused_cross_entropy=t.cross_entropy_loss_fusion, recompute_modules=lay.recompute_modules)


def _infeasible(s: Scenario, mem: MemoryBreakdown) -> InfeasibleError:
    cap = s.gpu.usable_hbm / GIB
    parts = ", ".join(f"{k.replace('_', ' ')} {v:.1f}" for k, v in mem.as_gib().items()
                      if k != "total" and (v or k in ("weights", "gradients", "optimizer", "activations")))
    return InfeasibleError(
        f"{s.workload_source}: {s.layout.describe()} needs {mem.total / GIB:.1f} GiB per GPU on pipeline stage "
        f"{mem.stage} but a {s.gpu.name} has {cap:.1f} GiB ({parts} GiB). Try more tensor/pipeline "
        "parallelism, the distributed optimizer, activation recomputation or a smaller micro batch.",
        details={"memory_breakdown_gib": mem.as_gib(), "capacity_gib": cap, "stage": mem.stage})


def _phase_step(index: int, total: int, name: str, ps: Scenario, efficiency: Efficiency, check_memory: bool, requested: str):
    """A training phase's step; a phase that cannot run says which one it is."""
    try:
        return _step(ps, efficiency, check_memory, bounded_engine(ps, requested, False)[0], False)
    except InfeasibleError as exc:
        raise InfeasibleError(f"training phase {index + 1} of {total} ('{name}', phases[{index}]): {exc}",
                              details=exc.details) from None


def simulate(s: Scenario, *, efficiency: Efficiency = DEFAULT, check_memory: bool = True,
             engine: str = "des", trace: bool = False, replicas: int = 32, seed: int = 0,
             campaign: bool = True, executor=None, timeline: bool = False) -> Result:
    """Predict one training step, then the whole training campaign with failures.

    ``engine="des"`` simulates the step event by event (engine/iteration.py); ``"analytical"`` is the
    closed form (cost/step.py). ``trace`` keeps the step's Chrome-trace events (DES only). The
    campaign (engine/campaign.py) runs ``replicas`` Monte Carlo replicas from ``seed`` when the
    workload says how long to train and ``campaign`` is true; ``executor`` runs them in parallel;
    ``timeline`` keeps replica 0's up/down timeline (for plots; it can be long).
    """
    a = resolve(s.workload.model)
    t, lay = s.workload.training, s.layout
    requested = engine
    kind, engine = bounded_engine(s, engine, trace)   # engine: the label the result shows
    st = _step(s, efficiency, check_memory, kind, trace)
    step_time = st.step_time
    tokens_per_step = t.global_batch_size * a.seq
    peak = s.gpu.peak("bf16") or s.gpu.peak(t.precision)
    model_flops = model_flops_per_token(a) * tokens_per_step
    rec_share = recomputed_fraction(lay) if lay.recompute == "full" else 1.0
    hw_flops = model_flops + rec_share * recompute_flops_per_token(a, lay.recompute, lay.recompute_modules) * tokens_per_step
    denom = step_time * s.num_gpus
    pc = count(a)
    tp = plan(t, a.seq)
    camp = energy = None
    phases: list = []
    phase_power: tuple = ()
    if s.phases:
        steps = [_phase_step(i, len(s.phases), name, ps, efficiency, check_memory, requested)
                 for i, (name, ps) in enumerate(s.phases)]
        plans = [plan(ps.workload.training, resolve(ps.workload.model).seq) for _, ps in s.phases]
        phases = [_phase_row(name, ps, pst, pp)
                  for (name, ps), pst, pp in zip(s.phases, steps, plans)]
        tp = TrainingPlan(sum(pp.steps for pp in plans), tp.tokens_per_step if tp else tokens_per_step,
                          sum(pp.tokens for pp in plans))
        if campaign:
            params = [campaign_params(ps, pst.step_time, train_steps=pp.steps, num_parameters=pc.total)
                      for (_, ps), pst, pp in zip(s.phases, steps, plans)]
            camp, per = run_phases(params, [n for n, _ in s.phases], replicas, seed, executor, timeline)
            if camp.finishes:
                energy = combine([account(ps, pst.step_w, pst.step_min, pst.step_max, pst.step_time, c, pst.power)
                                  for (_, ps), pst, c in zip(s.phases, steps, per)])
                phase_power = tuple((t0, campaign_levels(pst.power, pst.step_w))
                                    for t0, pst in zip(camp.phase_starts_s, steps))
            for row, c, ps in zip(phases, per, s.phases):
                row.update(_phase_campaign(c, ps[1]))
    elif campaign and tp is not None:
        camp = run_campaign(s, step_time, replicas=replicas, seed=seed, executor=executor,
                            train_steps=tp.steps, num_parameters=pc.total, timeline=timeline)
        # a campaign that does not finish has no energy, carbon or cost (null, with its reason)
        energy = account(s, st.step_w, st.step_min, st.step_max, step_time, camp, st.power) if camp.finishes else None
    ideal = sum(r["ideal_time_to_train_days"] for r in phases) if phases else (
        tp.steps * step_time / 86400 if tp else None)
    assumptions = dict(s.assumptions)
    for key, attr in _DERIVED.items():
        if key in assumptions and assumptions[key] is None:
            assumptions[key] = getattr(a, attr)
    for key, value in (("training.optimizer.steps_factor", steps_factor(t.optimizer)),
                       ("training.optimizer.overhead_flops_fraction", overhead_flops_fraction(t.optimizer))):
        if key in assumptions and assumptions[key] is None:
            assumptions[key] = value
    return Result(
        name=s.name, cluster=s.cluster.name, gpu=s.gpu.name, layout=lay.describe(), num_gpus=s.num_gpus,
        num_parameters=pc.total, num_active_parameters=pc.active, step_time_s=step_time,
        tokens_per_s=tokens_per_step / step_time, mfu=model_flops / (denom * peak),
        hfu=hw_flops / (denom * peak), tflops_per_gpu=model_flops / denom / 1e12,
        memory_per_gpu_gib=st.mem.total / GIB, memory_capacity_gib=s.gpu.usable_hbm / GIB,
        memory_breakdown_gib=st.mem.as_gib(), fits_in_memory=st.fits,
        global_batch_size=t.global_batch_size, seq_length=a.seq, micro_batch_size=lay.micro_batch_size,
        num_microbatches=lay.num_microbatches, breakdown=st.breakdown, engine=engine,
        train_steps=tp.steps if tp else None, train_tokens=tp.tokens if tp else None,
        ideal_time_to_train_days=ideal,
        stage_utilization=st.utilization, stage_memory_gib=[m.total / GIB for m in st.per_stage],
        stage_memory_breakdown_gib=[m.as_gib() for m in st.per_stage],
        assumptions=assumptions, trace=st.events, campaign=camp,
        energy=energy, step_power=st.sp, phases=phases, phase_power=phase_power)


@dataclass(frozen=True)
class _Step:
    step_time: float
    breakdown: dict
    events: list
    utilization: list
    step_w: float
    step_min: float
    step_max: float
    sp: object
    per_stage: list
    mem: MemoryBreakdown
    fits: bool
    power: object


def des_passes(s: Scenario) -> int:
    """Forward and backward passes the step DES runs: one each per microbatch, chunk and stage."""
    lay = s.layout
    return 2 * lay.num_microbatches * lay.pp * lay.vpp


def bounded_engine(s: Scenario, engine: str, trace: bool) -> tuple[str, str]:
    """(engine to run, label the result shows): ``engine``, or the closed form when the step DES
    would run more than MAX_DES_PASSES passes (the label says so); a trace of such a step is
    refused (exit 2)."""
    passes = des_passes(s)
    if engine != "des" or passes <= MAX_DES_PASSES:
        return engine, engine
    if trace:
        raise ConfigError(f"the step has {passes:,} forward and backward passes to trace "
                          f"({s.layout.num_microbatches:,} microbatches)", source="--trace",
                          expected=f"at most {MAX_DES_PASSES:,} passes (fewer microbatches: a larger micro "
                                   "batch or a smaller global batch), or no --trace")
    return "analytical", f"analytical (the step DES would run {passes:,} passes, over {MAX_DES_PASSES:,})"


def _step(s: Scenario, efficiency: Efficiency, check_memory: bool, engine: str, trace: bool) -> _Step:
    """One step of ``s``: its time, breakdown and power, by the DES or the closed form."""
    per_stage = stage_memory(s)
    mem = max(per_stage, key=lambda mb: mb.total)
    fits = mem.total <= s.gpu.usable_hbm
    if check_memory and not fits:
        raise _infeasible(s, mem)
    power = power_model_of(s)
    if engine == "des":
        it = simulate_step(s, efficiency, trace=trace)
        step_time, breakdown, events = it.step_time, it.breakdown, it.trace
        utilization = list(it.stage_utilization)
        sp = step_power(it.activity, step_time, power)
        step_w, step_min, step_max = sp.avg_w, sp.min_w, sp.max_w
    elif engine == "analytical":
        est = estimate_step(s, efficiency)
        step_time, breakdown, events = est.step_time, est.breakdown, []
        utilization = [st.total * s.layout.num_microbatches / est.step_time for st in est.stages]
        m = s.layout.num_microbatches
        busy = [(m * (st.compute + st.recompute), m * (st.tp + st.cp + st.ep)) for st in est.stages]
        step_w = step_min = step_max = average_step_power(busy, step_time, power)
        sp = None
    else:
        raise ValueError(f"unknown engine {engine!r}")
    check_step_time(step_time, s.cluster_source)
    return _Step(step_time, breakdown, events, utilization, step_w, step_min, step_max, sp,
                 per_stage, mem, fits, power)


def _phase_row(name: str, s: Scenario, st: _Step, tp) -> dict:
    """The step-level figures of one training phase (the JSON "phases" rows)."""
    a, t = resolve(s.workload.model), s.workload.training
    tokens_per_step = t.global_batch_size * a.seq
    peak = s.gpu.peak("bf16") or s.gpu.peak(t.precision)
    model_flops = model_flops_per_token(a) * tokens_per_step
    return {
        "name": name, "num_gpus": s.num_gpus, "layout": s.layout.describe(),
        "seq_length": a.seq, "global_batch_size": t.global_batch_size,
        "micro_batch_size": s.layout.micro_batch_size, "num_microbatches": s.layout.num_microbatches,
        "train_steps": tp.steps, "train_tokens": tp.tokens, "step_time_s": st.step_time,
        "tokens_per_s": tokens_per_step / st.step_time,
        "mfu": model_flops / (st.step_time * s.num_gpus * peak),
        "tflops_per_gpu": model_flops / (st.step_time * s.num_gpus) / 1e12,
        "memory_per_gpu_gib": st.mem.total / GIB,
        "ideal_time_to_train_days": tp.steps * st.step_time / 86400,
    }


def _phase_campaign(c, s: Scenario) -> dict:
    """One phase's campaign figures: its times to train and ETTR are the phase's own; the switch
    into it (the previous phase's save + this phase's restart) is ``switch_in_s``, apart; its
    GPU-hours include the switch (the GPUs are held), so the phases' GPU-hours sum to the run's."""
    wall, sw = c.wall_days, c.switch_in_s / 86400.0

    def own(days):
        return None if days is None else max(days - sw, 0.0)
    return {
        "time_to_train_days_p50": own(c.time_to_train_days_p50),
        "time_to_train_days_mean": own(c.time_to_train_days),
        "time_to_train_reason": c.time_to_train_reason,
        "ettr": c.ettr if c.ettr_in_phase is None else c.ettr_in_phase,
        "switch_in_s": c.switch_in_s, "ettr_with_switch": c.ettr,
        "failures": c.failures.get("total", 0.0), "checkpoint_interval_s": c.checkpoint_interval_s,
        "restart_s": c.restart_s, "mtbf_hours": mtbf_hours(c.mtbf_s),
        "gpu_hours": s.num_gpus * wall * 24.0 if c.finishes else None,
    }
