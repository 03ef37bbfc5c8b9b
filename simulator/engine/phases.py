"""A campaign of several training phases (batch ramp-up, longer context, annealing), in order.

Each phase is a campaign of its own (engine/campaign.py) with its step time, GPU count, failure
rates, checkpoint size and interval; replica i of the whole run is replica i of every phase, one
after the other. Between two phases the job stops and restarts under the new layout: a checkpoint
save of the phase that ends (its blocking part and write, charged to "checkpoint") and a restart of
the phase that begins (reschedule, communicator init, checkpoint load: charged to "restart"); each
phase's result includes the switch into it (``switch_in_s``), and ``ettr_in_phase`` is the phase's
own ETTR without it (a 3-step phase after an 18-minute switch would otherwise read ETTR 0.03). Failures are memoryless (exponential inter-arrival
times), so a phase's replica starting fresh loses nothing; with ``weibull_shape`` set each phase's
failure clocks start again at its switch (a restart renews the job, docs/campaign.md).

Phase 1's replicas draw the streams a one-phase campaign draws; phase k > 1 draws from a seed
derived from (seed, "phase", k), so the whole run is bit-for-bit reproducible.
"""
from __future__ import annotations

import math
from concurrent.futures import Executor
from dataclasses import replace

from simulator.engine.campaign import DAY, CampaignResult, run_campaigns, summarize
from simulator.engine.campaign_plan import CampaignParams
from simulator.engine.replica import ReplicaOutcome
from simulator.rng import seed_sequence


def phase_seed(seed: int, index: int) -> int:
    """The seed of phase ``index`` (0-based): the campaign's own for the first phase."""
    if index == 0:
        return seed
    return int(seed_sequence(seed, "phase", index).generate_state(1, dtype="uint64")[0] >> 1)


def switch_s(prev: CampaignParams, nxt: CampaignParams) -> tuple[float, float]:
    """(checkpoint save of the phase that ends, restart of the phase that begins), seconds."""
    return prev.save_s, nxt.restart_s


def _with_switch(o: ReplicaOutcome, save: float, restart: float) -> ReplicaOutcome:
    lost = dict(o.lost)
    lost["checkpoint"] += save
    lost["restart"] += restart
    timeline = None
    if o.timeline is not None:
        shift = save + restart
        timeline = [(0.0, save, "checkpoint"), (save, shift, "restart")] + [
            (a + shift, b + shift, st) for a, b, st in o.timeline]
    return replace(o, wall_s=o.wall_s + save + restart, lost=lost, timeline=timeline)


def _join(parts: list[ReplicaOutcome]) -> ReplicaOutcome:
    """Replica i of the whole run: its phases one after the other."""
    t, timeline = 0.0, [] if parts[0].timeline is not None else None
    for o in parts:
        if timeline is not None and o.timeline is not None:
            timeline.extend((a + t, b + t, st) for a, b, st in o.timeline)
        t += o.wall_s
    unfinished = [o.stop for o in parts if not o.finished]
    return ReplicaOutcome(
        wall_s=t, progress_s=sum(o.progress_s for o in parts), finished=not unfinished,
        checkpoints=sum(o.checkpoints for o in parts),
        counts={k: sum(o.counts[k] for o in parts) for k in parts[0].counts},
        lost={k: sum(o.lost[k] for o in parts) for k in parts[0].lost},
        timeline=timeline, stop=unfinished[0] if unfinished else "")


def run_phases(params: list[CampaignParams], names: list[str], replicas: int, seed: int,
               executor: Executor | None = None, timeline: bool = True
               ) -> tuple[CampaignResult, list[CampaignResult]]:
    """(the whole run, each phase) of a campaign of phases ``params`` in order."""
    per_out, per_res = [], []
    every = run_campaigns([(p, phase_seed(seed, k)) for k, p in enumerate(params)], replicas, executor, timeline)
    for k, p in enumerate(params):
        outs = every[k]
        own = _mean_ettr(outs)
        save, restart = switch_s(params[k - 1], p) if k else (0.0, 0.0)
        if k and outs:
            outs = [_with_switch(o, save, restart) for o in outs]
        res = summarize(p, outs, seed)
        if k:
            res = _shift(res, (save + restart) / DAY)
        res = replace(res, switch_in_s=save + restart, ettr_in_phase=res.ettr if own is None else own)
        per_out.append(outs)
        per_res.append(res)
    main = max(range(len(params)), key=lambda k: params[k].checkpoint.work_s)
    stuck = [k for k, r in enumerate(per_res) if not r.simulated]
    if stuck:
        k = stuck[0]
        whole = replace(per_res[k], time_to_train_reason=f"{per_res[k].time_to_train_reason} (in {names[k]})")
    else:
        whole = summarize(params[main], [_join(list(parts)) for parts in zip(*per_out)], seed)
        if whole.time_to_train_reason is not None:
            bad = next((k for k, r in enumerate(per_res) if r.time_to_train_reason), main)
            whole = replace(whole, time_to_train_reason=f"{per_res[bad].time_to_train_reason} (in {names[bad]})")
    starts, t = [], 0.0
    for outs in per_out:                   # replica 0's timeline: where each phase (its switch) begins
        starts.append(t)
        t += outs[0].wall_s if outs else 0.0
    est = [r.estimated_time_to_train_days for r in per_res]
    whole = replace(
        whole, ideal_time_to_train_days=sum(r.ideal_time_to_train_days for r in per_res),
        estimated_time_to_train_days=sum(est) if all(e is not None for e in est) else None,
        max_wall_days=sum(r.max_wall_days or math.inf for r in per_res),
        warnings=tuple(dict.fromkeys(f"{names[k]}: {w}" for k, r in enumerate(per_res) for w in r.warnings)),
        phases=tuple(per_res), phase_starts_s=tuple(starts))
    return whole, per_res


def _mean_ettr(outs: list[ReplicaOutcome]) -> float | None:
    """The replicas' mean ETTR within the phase (before the switch into it is added)."""
    if not outs:
        return None
    return sum(o.ettr for o in outs) / len(outs)


def _shift(r: CampaignResult, days: float) -> CampaignResult:
    """A phase's result with the switch into it added to its wall time."""
    def add(x):
        return None if x is None else x + days
    return replace(r, ideal_time_to_train_days=r.ideal_time_to_train_days,
                   estimated_time_to_train_days=add(r.estimated_time_to_train_days),
                   max_wall_days=add(r.max_wall_days))
