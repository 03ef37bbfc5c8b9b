"""The training campaign: weeks of steps with failures, checkpoints, restarts, spares, stragglers.

``run_campaign(scenario, step_time_s, replicas=N, seed=S)`` runs N Monte Carlo replicas of the
SimPy model in engine/replica.py (in-process, or through a ``concurrent.futures.Executor``) and
summarises them in a CampaignResult: time to train P10/P50/P90, ETTR, failures per class, time
lost per cause, the checkpoint interval used, and one replica's timeline. The model, every default
and its source are in docs/campaign.md.
"""
from __future__ import annotations

import math
from concurrent.futures import Executor
from dataclasses import dataclass, field

import numpy as np

from simulator.config.scenario import Scenario
from simulator.engine.checkpointing import CheckpointModel, daly_interval
from simulator.engine.failures import CLASS_NAMES, FailureClass, failure_classes, job_mtbf_s
from simulator.engine.replica import CAUSES, ReplicaOutcome, run_replica
from simulator.model.arch import resolve
from simulator.model.params import count
from simulator.model.training import plan as training_plan

DAY = 86400.0
HOUR = 3600.0
# Without a horizon, a replica still running after this many times its failure-free time counts as
# unfinished (its ETTR is < 5% anyway): a hopeless configuration must not run forever.
GIVE_UP_FACTOR = 20.0


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
    horizon_s: float | None = None
    give_up_s: float = math.inf        # stop there when no horizon is given

    @property
    def restart_s(self) -> float:
        """Restart = reschedule/restart + communicator init + checkpoint load."""
        return self.restart_time_s + self.communicator_init_s + self.checkpoint_load_s

    @property
    def mtbf_s(self) -> float:
        return job_mtbf_s(self.classes)


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

    size = ckc.bytes_per_parameter * params
    write = size / ckc.storage_bandwidth
    is_async = ckc.strategy == "async"
    blocking = size / num_gpus / ckc.async_blocking_bandwidth if is_async else write
    work = train_steps * step_time_s
    if ckc.interval == "auto":
        interval = checkpoint_interval_s(blocking, write, is_async, job_mtbf_s(classes), work)
    else:
        interval = float(ckc.interval)
    k = min(train_steps, max(1, round(interval / step_time_s)))
    ck = CheckpointModel(size, write, blocking, is_async, k, step_time_s, train_steps)

    idle = max(0, s.cluster.num_nodes - num_nodes) if rel.idle_nodes_as_spares else 0
    return CampaignParams(
        checkpoint=ck, classes=classes, num_gpus=num_gpus, num_nodes=num_nodes, dp=s.layout.dp,
        mean_time_to_detect_s=rel.mean_time_to_detect, restart_time_s=rel.restart_time,
        communicator_init_s=rel.communicator_init_per_gpu * num_gpus,
        checkpoint_load_s=size / ckc.storage_bandwidth,
        save_s=(blocking + write) if is_async else write, repair_s=rel.repair_time,
        spare_nodes=rel.spare_nodes + idle, continue_on_fewer_replicas=rel.continue_on_fewer_replicas,
        weibull_shape=rel.weibull_shape,
        planned_rate_per_s=rel.planned_maintenance_per_node_hour * num_nodes / HOUR,
        straggler_rate_per_s=rel.straggler_rate_per_node_hour * num_nodes / HOUR,
        straggler_slowdown=rel.straggler_slowdown,
        straggler_time_to_detect_s=rel.straggler_time_to_detect, horizon_s=horizon_s,
        give_up_s=GIVE_UP_FACTOR * (work + ck.last_index * ck.block_s(1.0)))


@dataclass(frozen=True)
class CampaignResult:
    """Monte Carlo summary of a campaign (days where the name says so, else SI)."""

    replicas: int
    seed: int
    ideal_time_to_train_days: float
    time_to_train_days: float                 # mean over replicas (nan if any did not finish)
    time_to_train_days_p10: float
    time_to_train_days_p50: float
    time_to_train_days_p90: float
    finished_fraction: float                  # < 1 when a horizon cut replicas short
    ettr: float                               # mean of productive time / wall time
    failures: dict                            # class -> mean count, and "total" (unexpected)
    planned_interruptions: float              # mean count
    stragglers: float                         # mean count
    time_lost_s: dict                         # cause -> mean seconds
    checkpoint_interval_s: float
    checkpoints: float                        # mean completed checkpoints
    mtbf_s: float                             # job mean time between unexpected interruptions
    checkpoint_size_bytes: float
    checkpoint_write_s: float
    checkpoint_blocking_s: float
    restart_s: float                          # restart + communicator init + checkpoint load
    wall_days: float                          # mean wall time simulated
    time_to_train_days_samples: tuple = ()
    ettr_samples: tuple = ()
    timeline: list = field(default_factory=list)   # replica 0: (start_s, end_s, state)

    def to_json(self) -> dict:
        out = {k: v for k, v in self.__dict__.items() if k not in ("timeline",)}
        out["time_to_train_days_samples"] = list(self.time_to_train_days_samples)
        out["ettr_samples"] = list(self.ettr_samples)
        return out


def _run_chunk(args) -> list[ReplicaOutcome]:
    params, seed, indices, record = args
    return [run_replica(params, seed, i, record=(record and i == 0)) for i in indices]


def _chunks(n: int, parts: int) -> list[range]:
    size = max(1, math.ceil(n / parts))
    return [range(a, min(n, a + size)) for a in range(0, n, size)]


def run_replicas(params: CampaignParams, replicas: int, seed: int, executor: Executor | None = None,
                 timeline: bool = True, chunks: int = 16) -> list[ReplicaOutcome]:
    """Outcomes of replicas 0..N-1 in order; identical in-process and through an executor."""
    if replicas < 1:
        raise ValueError(f"replicas must be at least 1, got {replicas}")
    if executor is None:
        return _run_chunk((params, seed, range(replicas), timeline))
    jobs = [(params, seed, r, timeline) for r in _chunks(replicas, chunks)]
    return [o for part in executor.map(_run_chunk, jobs) for o in part]


def summarize(params: CampaignParams, outcomes: list[ReplicaOutcome], seed: int) -> CampaignResult:
    n = len(outcomes)
    ck = params.checkpoint
    finished = [o.wall_s for o in outcomes if o.finished]
    ttt = np.array(finished) / DAY
    pct = np.percentile(ttt, [10, 50, 90]) if len(ttt) else [math.nan] * 3
    ettr = np.array([o.progress_s / o.wall_s if o.wall_s > 0 else 1.0 for o in outcomes])
    failures = {c: sum(o.counts[c] for o in outcomes) / n for c in CLASS_NAMES}
    failures["total"] = sum(failures.values())
    return CampaignResult(
        replicas=n, seed=seed, ideal_time_to_train_days=ck.work_s / DAY,
        time_to_train_days=float(ttt.mean()) if len(ttt) == n else math.nan,
        time_to_train_days_p10=float(pct[0]), time_to_train_days_p50=float(pct[1]),
        time_to_train_days_p90=float(pct[2]), finished_fraction=len(finished) / n,
        ettr=float(ettr.mean()), failures=failures,
        planned_interruptions=sum(o.counts["planned_maintenance"] for o in outcomes) / n,
        stragglers=sum(o.counts["straggler"] for o in outcomes) / n,
        time_lost_s={c: sum(o.lost[c] for o in outcomes) / n for c in CAUSES},
        checkpoint_interval_s=ck.interval_s, checkpoints=sum(o.checkpoints for o in outcomes) / n,
        mtbf_s=params.mtbf_s, checkpoint_size_bytes=ck.size_bytes, checkpoint_write_s=ck.write_s,
        checkpoint_blocking_s=ck.blocking_s, restart_s=params.restart_s,
        wall_days=sum(o.wall_s for o in outcomes) / n / DAY,
        time_to_train_days_samples=tuple(float(x) for x in ttt),
        ettr_samples=tuple(float(x) for x in ettr),
        timeline=outcomes[0].timeline or [])


def run_campaign(scenario: Scenario, step_time_s: float, replicas: int = 100, seed: int = 0,
                 executor: Executor | None = None, *, train_steps: int | None = None,
                 num_parameters: float | None = None, horizon_s: float | None = None,
                 timeline: bool = True) -> CampaignResult:
    """Monte Carlo campaign of ``scenario`` at ``step_time_s`` per step.

    Replica i draws only from streams seeded by (seed, i), so the result is the same whether the
    replicas run here or through ``executor`` (e.g. a ProcessPoolExecutor). ``horizon_s`` stops
    each replica after that much wall time (e.g. a 54-day window); ``train_steps`` and
    ``num_parameters`` default to the scenario's.
    """
    params = campaign_params(scenario, step_time_s, train_steps=train_steps,
                             num_parameters=num_parameters, horizon_s=horizon_s)
    return summarize(params, run_replicas(params, replicas, seed, executor, timeline), seed)
