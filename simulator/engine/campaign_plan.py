"""A campaign's parameters, its analytic expected wall time and its up-front verdict.

``campaign_params(scenario, step_time_s)`` turns a Scenario and a step time into the SI-unit
CampaignParams a Monte Carlo replica (engine/replica.py) runs on: failure classes, the checkpoint
model and interval, restart and recovery times, the spare pool, stragglers and jitter, the cap.
``expected_wall_s`` is the closed-form expectation for exponential failures; ``with_verdict``
decides from that arithmetic, before any simulation, the campaigns that cannot finish. The driver
that runs and summarises the replicas is engine/campaign.py; the model is in docs/campaign.md.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

from simulator.config.scenario import Scenario
from simulator.engine.checkpointing import CheckpointModel, daly_interval
from simulator.engine.failures import FailureClass, failure_classes, job_mtbf_s
from simulator.model.arch import resolve
from simulator.model.params import count
from simulator.model.training import plan as training_plan

DAY = 86400.0
HOUR = 3600.0
YEAR = 365.25 * DAY
# Limits that keep every campaign bounded (docs/campaign.md, "Campaigns that cannot finish"):
MAX_WALL_S = 100 * YEAR          # no replica simulates past a century of wall time
MAX_EVENTS = 100_000             # interruptions a replica may simulate (a 405B whole run: ~1,100)
SPARE_WARNING = 0.03            # waiting for spares above this share of the wall time: a warning
HOPELESS = 10.0                  # expected wall time this many times the cap: decided up front


@dataclass(frozen=True)
class CampaignParams:
    """Everything a replica needs, in SI units (picklable: it travels to worker processes)."""

    checkpoint: CheckpointModel
    classes: tuple[FailureClass, ...]
    num_gpus: int
    num_nodes: int
    dp: int
    mean_time_to_detect_s: float
    restart_time_s: float          # reschedule + process restart (the YAML's restart_time)
    communicator_init_s: float
    checkpoint_load_s: float
    save_s: float                  # a planned stop's checkpoint: blocking part + write
    repair_s: float
    spare_nodes: int               # the pool: spare_nodes (+ idle cluster nodes)
    continue_on_fewer_replicas: bool
    weibull_shape: float | None
    planned_rate_per_s: float
    straggler_rate_per_s: float
    straggler_slowdown: float
    straggler_time_to_detect_s: float
    jitter_slowdown: float = 1.0       # slowest-of-dp per-step jitter, on every step
    eval_slowdown: float = 1.0         # 1 + evaluation time per step of work (training.eval_*)
    time_limit_s: float | None = None  # a job's wall-clock limit (reliability.job_time_limit)
    idle_spare_nodes: int = 0          # of spare_nodes: idle cluster nodes (idle_nodes_as_spares)
    horizon_s: float | None = None
    give_up_s: float = math.inf        # the cap: beyond it a replica "does not finish"
    max_events: int = MAX_EVENTS       # interruptions a replica may simulate
    verdict: str | None = None         # set: the campaign cannot finish, decided from arithmetic
    estimate_s: float = math.nan       # analytic expected wall time (exponential failures)
    restart_includes_init_and_load: bool = False   # reliability.restart_time_includes_init_and_load
    notes: tuple = ()                  # input settings the campaign had to round (shown as warnings)

    @property
    def restart_s(self) -> float:
        """Restart = reschedule/restart + communicator init + checkpoint load; or, when the YAML's
        restart_time is the whole measured restart overhead (restart_time_includes_init_and_load),
        that overhead, and never less than the communicator init and checkpoint load it includes."""
        return restart_seconds(self.restart_time_s, self.communicator_init_s + self.checkpoint_load_s,
                               self.restart_includes_init_and_load)

    @property
    def mtbf_s(self) -> float:
        return job_mtbf_s(self.classes)


def restart_seconds(restart_time_s: float, init_and_load_s: float, includes: bool) -> float:
    """A restart's seconds: restart_time + communicator init + checkpoint load, or (``includes``:
    restart_time is a measured whole restart overhead) restart_time, at least init + load."""
    return max(restart_time_s, init_and_load_s) if includes else restart_time_s + init_and_load_s


def checkpoint_interval_s(blocking_s: float, write_s: float, is_async: bool, mtbf_s: float,
                          work_s: float) -> float:
    """'auto': Daly's optimum for the blocking cost δ (sync: the write; async: the snapshot).

    Async writes must finish before the next snapshot, so the interval is at least the write time.
    With no failures the only checkpoint worth taking is none (interval = the whole run).
    """
    if math.isinf(mtbf_s):
        return work_s
    tau = daly_interval(blocking_s, mtbf_s)
    return max(tau, write_s) if is_async else tau


def checkpoint_bytes_per_parameter(ckc, optimizer: str) -> float:
    """Bytes per parameter of a checkpoint: the key, or bf16 weights + the optimizer's state."""
    if ckc.bytes_per_parameter is not None:
        return ckc.bytes_per_parameter
    from simulator.model.memory import OPTIMIZER_STATE_BYTES
    return 2.0 + OPTIMIZER_STATE_BYTES[optimizer]


def spare_pool_nodes(rel, job_nodes: int) -> int:
    """The dedicated spare pool: ``spare_nodes``, or ``spare_fraction`` of the job's nodes."""
    return rel.spare_pool(job_nodes)


def campaign_params(s: Scenario, step_time_s: float, *, train_steps: int | None = None,
                    num_parameters: float | None = None, horizon_s: float | None = None
                    ) -> CampaignParams:
    """Derive a campaign's parameters from a Scenario and the step time (SI units)."""
    if not step_time_s > 0:
        raise ValueError(f"step_time_s must be positive, got {step_time_s!r}")
    rel, ckc = s.cluster.reliability, s.workload.checkpoint
    arch = resolve(s.workload.model)
    if train_steps is None:
        tp = training_plan(s.workload.training, arch.seq)
        if tp is None:
            raise ValueError(f"{s.name}: no training length (train_tokens or train_iters); "
                             "pass train_steps=")
        train_steps = tp.steps
    params = count(arch).total if num_parameters is None else num_parameters
    num_gpus = s.num_gpus
    num_nodes = math.ceil(num_gpus / s.cluster.node.gpus_per_node)
    classes = failure_classes(rel, num_gpus, num_nodes)

    size = checkpoint_bytes_per_parameter(ckc, s.workload.training.optimizer.kind) * params
    node_bw = math.inf if ckc.node_storage_bandwidth is None else ckc.node_storage_bandwidth * num_nodes
    write = size / min(ckc.storage_bandwidth, node_bw)          # every writer shares the storage
    load = size / min(ckc.load_bandwidth, ckc.storage_bandwidth, node_bw)
    is_async = ckc.strategy == "async"
    blocking = size / num_gpus / ckc.async_blocking_bandwidth if is_async else write
    work = train_steps * step_time_s
    if ckc.interval == "auto":
        interval = checkpoint_interval_s(blocking, write, is_async, job_mtbf_s(classes), work)
    else:
        interval = float(ckc.interval)
    k = min(train_steps, max(1, round(min(interval / step_time_s, 1e18))))
    notes = ()
    if ckc.interval != "auto" and interval < 0.5 * step_time_s:   # it rounds to a whole number of steps
        notes = (f"checkpoint.interval {interval:.3g} s is shorter than one step ({step_time_s:.3g} s): "
                 "a checkpoint is taken every step",)
    ck = CheckpointModel(size, write, blocking, is_async, k, step_time_s, train_steps)

    dedicated = spare_pool_nodes(rel, num_nodes)
    # the cluster's nodes the job leaves idle also serve as spares; the dedicated pool is counted
    # among them when the cluster has room for it (reliability.spare_nodes <= num_nodes)
    idle = max(0, s.cluster.num_nodes - num_nodes - dedicated) if rel.idle_nodes_as_spares else 0
    # the cap: max_wall_factor x the ideal time, and never less than that many recoveries, so that
    # a short run (a few steps of an annealing phase) is not "hopeless" because one failure's
    # recovery outlasts ten times its work
    init = rel.communicator_init_per_gpu * num_gpus
    recovery = rel.mean_time_to_detect + restart_seconds(rel.restart_time, init + load,
                                                         rel.restart_time_includes_init_and_load)
    cap = (rel.max_wall_factor * max(work, recovery) if rel.max_wall_time is None
           else rel.max_wall_time)
    p = CampaignParams(
        restart_includes_init_and_load=rel.restart_time_includes_init_and_load,
        checkpoint=ck, classes=classes, num_gpus=num_gpus, num_nodes=num_nodes, dp=s.layout.dp,
        mean_time_to_detect_s=rel.mean_time_to_detect, restart_time_s=rel.restart_time,
        communicator_init_s=init,
        checkpoint_load_s=load,
        save_s=(blocking + write) if is_async else write, repair_s=rel.repair_time,
        spare_nodes=dedicated + idle, idle_spare_nodes=idle,
        continue_on_fewer_replicas=rel.continue_on_fewer_replicas,
        weibull_shape=rel.weibull_shape,
        planned_rate_per_s=rel.planned_maintenance_per_node_hour * num_nodes / HOUR,
        straggler_rate_per_s=rel.straggler_rate_per_node_hour * num_nodes / HOUR,
        straggler_slowdown=rel.straggler_slowdown,
        straggler_time_to_detect_s=rel.straggler_time_to_detect, horizon_s=horizon_s,
        jitter_slowdown=1.0 + rel.step_jitter * expected_max_normal(s.layout.dp),
        eval_slowdown=eval_slowdown(s.workload.training, step_time_s),
        time_limit_s=rel.job_time_limit,
        give_up_s=min(cap, MAX_WALL_S), notes=notes)
    return with_verdict(p)


def eval_slowdown(training, step_time_s: float) -> float:
    """1 + the evaluation time per step of training: one evaluation of ``eval_time`` every
    ``eval_interval`` steps stretches the run evenly (its mean; when in the run it falls does not
    matter to the time to train, only to what a failure during it loses, which this neglects)."""
    if training.eval_interval is None or training.eval_time <= 0:
        return 1.0
    return 1.0 + training.eval_time / (training.eval_interval * step_time_s)


def expected_max_normal(n: int) -> float:
    """E[max of n independent standard normals], Blom's (1958) approximation
    Φ⁻¹((n − 0.375) / (n + 0.25)): 0 for n = 1, 0.59 for 2 (exact 0.56), 3.0 for 1,000."""
    from statistics import NormalDist
    return 0.0 if n <= 1 else NormalDist().inv_cdf((n - 0.375) / (n + 0.25))


def _grow(rate: float, x: float) -> float:
    """(e^(rate·x) − 1) / rate, the expected time to get x uninterrupted seconds (inf on overflow)."""
    if rate <= 0:
        return x
    y = rate * x
    if y > 700:
        return math.inf
    return math.expm1(y) / rate


def expected_wall_s(p: CampaignParams) -> float:
    """Expected wall time of the campaign for exponential failures (no spare shortage, no horizon).

    A failure costs detection D, then a restart R that a failure during it starts again:
    T_r = (D + 1/λ)·e^(λR) − 1/λ. Each checkpoint segment of s = Δ + c wall seconds must then run
    uninterrupted, which takes (1/λ + T_r)·(e^(λs) − 1) on average (the classic renewal result for
    checkpointed work). Planned stops and straggler evictions each cost a save plus a restart and
    stretch the total by 1 / (1 − ρ), ρ = their rate × cost; ρ ≥ 1 never finishes.
    """
    ck = p.checkpoint
    lam = sum(c.rate_per_s for c in p.classes)
    f = p.jitter_slowdown * p.eval_slowdown
    segments = ck.last_index + 1
    seg = ck.interval_s * f + ck.block_s(f) if segments > 1 else ck.work_s * f
    if lam > 0:
        t_r = (p.mean_time_to_detect_s + 1.0 / lam) * (_grow(lam, p.restart_s) * lam + 1.0) - 1.0 / lam
        base = segments * (1.0 / lam + t_r) * lam * _grow(lam, seg)
    else:
        base = ck.work_s * f + ck.last_index * ck.block_s(f)
    stops = p.planned_rate_per_s + p.straggler_rate_per_s
    rho = stops * (p.save_s + p.restart_s + p.straggler_time_to_detect_s * (p.straggler_slowdown - 1)
                   * (p.straggler_rate_per_s / stops if stops else 0.0))
    if p.time_limit_s is not None:             # a save + restart every limit of wall time
        rho += (p.save_s + p.restart_s) / p.time_limit_s
    if rho >= 1 or math.isnan(base):
        return math.inf
    wall = base / (1.0 - rho)
    avail = spare_availability(p, wall)
    return math.inf if avail <= 0 else wall / avail


def wall_without_spare_shortage_s(p: CampaignParams) -> float:
    """expected_wall_s with a pool that never runs dry: the horizon over which nodes go into repair."""
    return expected_wall_s(replace(p, spare_nodes=10**9, continue_on_fewer_replicas=False))


def nodes_in_repair(p: CampaignParams, horizon_s: float = math.inf) -> float:
    """Mean nodes in repair: node-taking failures run in wall time, M/M/∞ with mean repair time R.
    The job starts with none in repair, so after t seconds the mean is rate × R × (1 − e^(−t/R)): a
    job much shorter than a repair never sees the steady state rate × R (``horizon_s``: the job's
    wall time; infinite: the steady state)."""
    steady = sum(c.rate_per_s for c in p.classes if c.takes_node) * p.repair_s
    if not math.isfinite(horizon_s) or p.repair_s <= 0:
        return steady
    return steady * -math.expm1(-horizon_s / p.repair_s)


def spare_availability(p: CampaignParams, horizon_s: float = math.inf) -> float:
    """Share of the time the job has all the nodes it needs: P(nodes in repair ≤ what the pool and
    continue_on_fewer_replicas can cover), the number in repair being Poisson (M/M/∞) at the end of
    a job of ``horizon_s`` wall seconds (its largest value; the steady state when infinite)."""
    m = nodes_in_repair(p, horizon_s)
    cover = p.spare_nodes
    if p.continue_on_fewer_replicas:
        cover += (p.dp - 1) // max(1, p.dp // p.num_nodes)
    if m <= 0:
        return 1.0
    if cover > m + 40 * math.sqrt(m) + 40:     # far in the tail: certain
        return 1.0
    term = total = math.exp(-m) if m < 700 else 0.0
    if term == 0.0:                            # Poisson(m) far beyond cover: log-space tail
        log_pk = -m + cover * math.log(m) - math.lgamma(cover + 1)
        return min(1.0, math.exp(log_pk) * (cover + 1) / max(1e-300, cover + 1 - m)) if cover < m else 1.0
    for k in range(1, int(cover) + 1):
        term *= m / k
        total += term
    return min(1.0, total)


def _span(seconds: float) -> str:
    """A short human duration for verdicts (s, min, h, d, y)."""
    if not math.isfinite(seconds):
        return "forever"
    for unit, size in (("y", YEAR), ("d", DAY), ("h", HOUR), ("min", 60.0)):
        if seconds >= size:
            return f"{seconds / size:.3g} {unit}"
    return f"{seconds:.3g} s"


def _why(p: CampaignParams) -> str:
    """The arithmetic reason a campaign cannot finish, in words."""
    ck, mtbf = p.checkpoint, p.mtbf_s
    recovery = p.mean_time_to_detect_s + p.restart_s
    if recovery >= mtbf:
        return (f"failures every {_span(mtbf)} exceed recovery of {_span(recovery)} "
                f"(detection {_span(p.mean_time_to_detect_s)} + restart {_span(p.restart_s)})")
    if ck.block_s(1.0) >= mtbf:
        return f"a checkpoint takes {_span(ck.block_s(1.0))}, longer than the {_span(mtbf)} between failures"
    if ck.interval_s >= mtbf:
        return (f"{_span(ck.interval_s)} of work between checkpoints (a step takes "
                f"{_span(ck.step_time_s)}) against failures every {_span(mtbf)}")
    horizon = wall_without_spare_shortage_s(p)
    if spare_availability(p, horizon) < 0.01:
        return (f"{nodes_in_repair(p, horizon):.3g} nodes in repair on average (node failures every "
                f"{_span(1 / sum(c.rate_per_s for c in p.classes if c.takes_node))} × repair "
                f"{_span(p.repair_s)}) exceed the pool of {p.spare_nodes} spare nodes")
    if p.time_limit_s is not None and p.time_limit_s <= p.save_s + p.restart_s:
        return (f"a job time limit of {_span(p.time_limit_s)} leaves no time to train after its "
                f"checkpoint save and restart ({_span(p.save_s + p.restart_s)})")
    stops = p.planned_rate_per_s + p.straggler_rate_per_s
    if stops and stops * (p.save_s + p.restart_s) >= 1:
        return (f"planned stops and straggler evictions every {_span(1 / stops)} exceed their cost of "
                f"{_span(p.save_s + p.restart_s)} (save + restart)")
    return f"expected wall time {_span(expected_wall_s(p))} (failures every {_span(mtbf)})"


def with_verdict(p: CampaignParams) -> CampaignParams:
    """Decide up front, from arithmetic, the campaigns that cannot finish or cannot be simulated."""
    from dataclasses import replace
    ck = p.checkpoint
    est = expected_wall_s(p)
    verdict = None
    ideal = ck.work_s
    if ideal > MAX_WALL_S:
        verdict = (f"does not finish: the failure-free run alone takes {_span(ideal)} "
                   f"({ck.train_steps:.3g} steps of {_span(ck.step_time_s)}), beyond the "
                   f"{_span(MAX_WALL_S)} limit")
    elif est > HOPELESS * p.give_up_s:
        expect = f"expected {_span(est)}" if math.isfinite(est) else "never finishes on average"
        verdict = f"does not finish: {_why(p)}; {expect}, limit {_span(p.give_up_s)}"
    else:
        window = min(est, p.give_up_s if p.horizon_s is None else min(p.horizon_s, p.give_up_s))
        rate = (sum(c.rate_per_s for c in p.classes) + p.planned_rate_per_s
                + 2 * p.straggler_rate_per_s)
        if rate * window > p.max_events:
            verdict = (f"not simulated: ~{rate * window:.3g} interruptions expected in "
                       f"{_span(window)}, above the limit of {p.max_events:,} per replica; "
                       f"expected time to train {_span(est)} (analytic)")
    return replace(p, verdict=verdict, estimate_s=est)
