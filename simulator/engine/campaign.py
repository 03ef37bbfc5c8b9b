"""The training campaign: weeks of steps with failures, checkpoints, restarts, spares, stragglers.

``run_campaign(scenario, step_time_s, replicas=N, seed=S)`` runs N Monte Carlo replicas of the
SimPy model in engine/replica.py (in-process, or through a ``concurrent.futures.Executor``) and
summarises them in a CampaignResult: time to train P10/P50/P90, ETTR, failures per class, time
lost per cause, the checkpoint interval used, and one replica's timeline. Parameters, the analytic
estimate and the up-front verdict are in engine/campaign_plan.py. The model, every default and its
source are in docs/campaign.md.
"""
from __future__ import annotations

import math
from concurrent.futures import Executor
from dataclasses import dataclass, field

import numpy as np

from simulator.config.scenario import Scenario
from simulator.engine.campaign_plan import (  # noqa: F401  (re-exported: the campaign's API)
    DAY, HOUR, MAX_EVENTS, MAX_WALL_S, SPARE_WARNING, YEAR, CampaignParams, _span, _why,
    campaign_params, checkpoint_bytes_per_parameter, checkpoint_interval_s, expected_max_normal,
    expected_wall_s, nodes_in_repair, spare_availability, spare_pool_nodes, with_verdict)
from simulator.engine.failures import CLASS_NAMES
from simulator.engine.replica import CAUSES, ReplicaOutcome, run_replica


@dataclass(frozen=True)
class CampaignResult:
    """Monte Carlo summary of a campaign (days where the name says so, else SI)."""

    replicas: int
    seed: int
    ideal_time_to_train_days: float
    time_to_train_days: float | None          # mean over replicas (None if any did not finish)
    time_to_train_days_p10: float | None      # None when fewer than 10% of the replicas finished
    time_to_train_days_p50: float | None
    time_to_train_days_p90: float | None
    finished_fraction: float                  # < 1 when a horizon or the cap cut replicas short
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
    # why a time to train is None ("does not finish: ..."), None when the P50 exists
    time_to_train_reason: str | None = None
    estimated_time_to_train_days: float | None = None   # analytic (exponential failures)
    max_wall_days: float | None = None                  # the cap each replica ran under
    spare_nodes: int = 0                                # the pool (dedicated + idle nodes)
    idle_spare_nodes: int = 0                           # of spare_nodes: idle cluster nodes
    checkpoint_load_s: float = 0.0
    simulated: bool = True                              # False: decided up front
    warnings: tuple = ()
    phases: tuple = ()            # a run of training phases: each phase's CampaignResult (engine/phases.py)
    # one phase of such a run: the switch into it (the previous phase's checkpoint save + this
    # phase's restart), included in wall_days, the times to train and time_lost_s; ettr_in_phase
    # is the phase's own ETTR with the switch left out (None outside a run of phases)
    switch_in_s: float = 0.0
    ettr_in_phase: float | None = None
    phase_starts_s: tuple = ()    # a run of phases: where each phase begins in replica 0's timeline

    @property
    def finishes(self) -> bool:
        return self.time_to_train_days_p50 is not None

    def to_json(self) -> dict:
        out = {k: v for k, v in self.__dict__.items() if k not in ("timeline", "phases")}
        out["phases"] = [p.to_json() for p in self.phases]
        out["warnings"] = list(self.warnings)
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
    return run_campaigns([(params, seed)], replicas, executor, timeline, chunks)[0]


def run_campaigns(campaigns: list[tuple[CampaignParams, int]], replicas: int, executor: Executor | None = None,
                  timeline: bool = True, chunks: int = 16) -> list[list[ReplicaOutcome]]:
    """``run_replicas`` of several campaigns (params, seed), e.g. a run's phases: through an
    executor their chunks go out together, so no campaign waits for the last chunk of the one before."""
    if replicas < 1:
        raise ValueError(f"replicas must be at least 1, got {replicas}")
    if executor is None:
        return [[] if p.verdict is not None else _run_chunk((p, seed, range(replicas), timeline))
                for p, seed in campaigns]
    jobs = [(k, (p, seed, r, timeline)) for k, (p, seed) in enumerate(campaigns) if p.verdict is None
            for r in _chunks(replicas, chunks)]
    # the busiest campaigns' chunks first, so the light ones fill the workers' last moments
    # (the outcomes are put back in order: a chunk depends only on its campaign and indices)
    jobs.sort(key=lambda j: -_expected_events(campaigns[j[0]][0]))
    parts: dict[tuple[int, int], list[ReplicaOutcome]] = {}
    for (k, job), part in zip(jobs, executor.map(_run_chunk, [j for _, j in jobs])):
        parts[k, job[2].start] = part
    out: list[list[ReplicaOutcome]] = [[] for _ in campaigns]
    for k, start in sorted(parts):
        out[k].extend(parts[k, start])
    return out


def _expected_events(p: CampaignParams) -> float:
    """Interruptions a replica of ``p`` expects (its analytic wall time x the arrival rates): a
    chunk's cost, for ordering them."""
    rate = sum(c.rate_per_s for c in p.classes) + p.planned_rate_per_s + p.straggler_rate_per_s
    wall = p.estimate_s if math.isfinite(p.estimate_s) else p.checkpoint.work_s
    return rate * wall


def _finite(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def _percentile(finished_days, n: int, q: float) -> float | None:
    """The q-th percentile of n replicas' times, the unfinished ones ranked last (as +inf);
    None when it falls among the unfinished. Equals numpy's 'linear' percentile when all finish."""
    if len(finished_days) == n:
        return float(np.percentile(finished_days, q))
    h = (n - 1) * q / 100.0
    if math.ceil(h) >= len(finished_days):
        return None
    return float(np.percentile(np.concatenate([finished_days, [np.inf] * (n - len(finished_days))]), q))


def _warnings(lost: dict, wall_s: float, spares: int) -> tuple:
    out = []
    if wall_s > 0 and lost.get("waiting_for_spares", 0.0) > SPARE_WARNING * wall_s:
        out.append(f"waiting for spare nodes takes {100 * lost['waiting_for_spares'] / wall_s:.1f} % of "
                   f"the wall time with a pool of {spares} nodes: raise reliability.spare_nodes or "
                   "spare_fraction, or set continue_on_fewer_replicas")
    return tuple(out)


def summarize(params: CampaignParams, outcomes: list[ReplicaOutcome], seed: int) -> CampaignResult:
    ck = params.checkpoint
    common = dict(
        seed=seed, ideal_time_to_train_days=ck.work_s / DAY, checkpoint_interval_s=ck.interval_s,
        mtbf_s=params.mtbf_s, checkpoint_size_bytes=ck.size_bytes, checkpoint_write_s=ck.write_s,
        checkpoint_blocking_s=ck.blocking_s, restart_s=params.restart_s,
        estimated_time_to_train_days=_finite(params.estimate_s / DAY),
        max_wall_days=params.give_up_s / DAY, spare_nodes=params.spare_nodes,
        idle_spare_nodes=params.idle_spare_nodes,
        checkpoint_load_s=params.checkpoint_load_s)
    if not outcomes:                                  # decided up front: nothing simulated
        wall = min(params.estimate_s, params.give_up_s)
        failures = {c.name: c.rate_per_s * wall for c in params.classes}
        failures["total"] = sum(failures.values())
        est = params.estimate_s
        return CampaignResult(
            replicas=0, time_to_train_days=None, time_to_train_days_p10=None,
            time_to_train_days_p50=None, time_to_train_days_p90=None, finished_fraction=0.0,
            ettr=ck.work_s / est if est > 0 and math.isfinite(est) else 0.0, failures=failures,
            planned_interruptions=(params.planned_rate_per_s
                                   + (1.0 / params.time_limit_s if params.time_limit_s else 0.0)) * wall,
            stragglers=params.straggler_rate_per_s * wall, time_lost_s=dict.fromkeys(CAUSES, 0.0),
            checkpoints=0.0, wall_days=wall / DAY, time_to_train_reason=params.verdict,
            simulated=False, warnings=params.notes, **common)
    n = len(outcomes)
    finished = [o.wall_s for o in outcomes if o.finished]
    ttt = np.array(finished) / DAY
    pct = [_percentile(ttt, n, q) for q in (10, 50, 90)]
    ettr = np.array([o.ettr for o in outcomes])
    failures = {c: sum(o.counts[c] for o in outcomes) / n for c in CLASS_NAMES}
    failures["total"] = sum(failures.values())
    lost = {c: sum(o.lost[c] for o in outcomes) / n for c in CAUSES}
    wall_mean = sum(o.wall_s for o in outcomes) / n
    reason = None
    if pct[1] is None:
        capped = [o for o in outcomes if not o.finished and o.stop == "events"]
        if capped:
            reason = (f"not finished: {len(capped)} of {n} replicas hit the limit of "
                      f"{params.max_events:,} interruptions")
        elif params.horizon_s is not None and params.horizon_s <= params.give_up_s:
            reason = f"not finished within the horizon of {_span(params.horizon_s)}"
        else:
            reason = (f"does not finish: {n - len(finished)} of {n} replicas still running after "
                      f"{_span(params.give_up_s)} (the cap); {_why(params)}")
    return CampaignResult(
        replicas=n, time_to_train_days=float(ttt.mean()) if len(finished) == n else None,
        time_to_train_days_p10=pct[0], time_to_train_days_p50=pct[1], time_to_train_days_p90=pct[2],
        finished_fraction=len(finished) / n,
        ettr=float(ettr.mean()), failures=failures,
        planned_interruptions=sum(o.counts["planned_maintenance"] + o.counts["time_limit"]
                                  for o in outcomes) / n,
        stragglers=sum(o.counts["straggler"] for o in outcomes) / n,
        time_lost_s=lost, checkpoints=sum(o.checkpoints for o in outcomes) / n,
        wall_days=wall_mean / DAY,
        time_to_train_days_samples=tuple(float(x) for x in ttt),
        ettr_samples=tuple(float(x) for x in ettr),
        timeline=outcomes[0].timeline or [], time_to_train_reason=reason,
        warnings=params.notes + _warnings(lost, wall_mean, params.spare_nodes), **common)


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
