"""One Monte Carlo replica of a training campaign as a SimPy model (after SimPy's machine shop).

A training process runs in closed form between events (engine/checkpointing.RunPlan). Failure
processes, one per class, interrupt it; so do planned maintenance and stragglers. After a failure
the job is down for detection, waits for spare nodes if a node was lost, restarts (reschedule +
communicator init + checkpoint load) and resumes from the newest durable checkpoint. Broken nodes
are repaired by their own processes and go back to the spare pool, a ``simpy.Container``.

Every wall second of the replica is charged to one cause, so that
productive + Σ time lost per cause = wall time (tests check it).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import simpy

from simulator.engine.checkpointing import RunPlan
from simulator.engine.failures import CLASS_NAMES, FailureClass, interarrival
from simulator.rng import Sampler, Streams

CAUSES = ("lost_work", "detection", "waiting_for_spares", "restart", "checkpoint", "stragglers",
          "fewer_replicas", "planned_maintenance")
UP, SAVE, DETECT, WAIT, RESTART = "up", "save", "detect", "wait", "restart"
_TIMELINE_STATE = {SAVE: "checkpoint", DETECT: "down", WAIT: "down", RESTART: "restart"}
_PHASE_CAUSE = {DETECT: "detection", WAIT: "waiting_for_spares"}


@dataclass(frozen=True)
class PlannedStop:
    """Interrupt cause: a stop with a checkpoint first (planned maintenance, straggler eviction)."""

    reason: str            # the cause its time is charged to


SLOWER = object()          # interrupt cause: a straggler appeared; re-plan at the new speed


@dataclass
class ReplicaOutcome:
    wall_s: float
    progress_s: float
    finished: bool
    checkpoints: int
    counts: dict = field(default_factory=dict)
    lost: dict = field(default_factory=dict)
    timeline: list | None = None
    stop: str = ""            # why an unfinished replica stopped: "cap", "horizon" or "events"


class Replica:
    """The processes of one replica; ``run()`` drives the environment and returns the outcome."""

    def __init__(self, params, streams: Streams, record: bool = False):
        p = self.p = params
        env = self.env = simpy.Environment()
        self.spares = simpy.Container(env, init=p.spare_nodes)
        self.progress, self.committed, self.pending, self.lead = 0.0, 0.0, None, 0.0
        self.missing = self.short = self.slow = 0
        self.phase, self.since, self.left = UP, 0.0, 0.0      # left: of a timed phase
        self.restart_cause, self.save_reason, self.plan = "restart", "", None
        self.request, self.request_need = None, 0
        self.f_slow = self.f_short = 1.0
        self.checkpoints, self.finished = 0, False
        self.lost = dict.fromkeys(CAUSES, 0.0)
        self.counts = dict.fromkeys(CLASS_NAMES + ("planned_maintenance", "straggler"), 0)
        self.timeline: list | None = [] if record else None
        self.detect = Sampler(streams.get("detect"), "exponential", p.mean_time_to_detect_s)
        self.repair = Sampler(streams.get("repair"), "exponential", p.repair_s)
        self.proc = env.process(self._train())
        self.events, self.abort = 0, env.event()   # abort: the interruption limit was reached
        for cls in p.classes:
            if cls.rate_per_s > 0:
                gap = interarrival(streams.get("failure", cls.name), cls.rate_per_s, p.weibull_shape)
                env.process(self._failures(cls, gap))
        if p.planned_rate_per_s > 0:
            gap = interarrival(streams.get("planned"), p.planned_rate_per_s, None)  # scheduled
            env.process(self._planned(gap))
        if p.straggler_rate_per_s > 0:
            env.process(self._stragglers(
                Sampler(streams.get("straggler"), "exponential", 1.0 / p.straggler_rate_per_s)))

    # ---- the training process -------------------------------------------------------------
    def _train(self):
        env, p = self.env, self.p
        while True:
            try:
                if self.phase == UP:
                    self._begin_run()
                    yield env.timeout(self.plan.duration())
                    self._end_run()
                    self.finished = True
                    return
                self.since = env.now
                if self.phase == WAIT:
                    yield from self._get_spares()
                    self._charge("waiting_for_spares")
                    self.phase, self.left = RESTART, p.restart_s
                    continue
                yield env.timeout(self.left)
                self._charge(self._cause())
                if self.phase == SAVE:
                    self.committed, self.pending = self.progress, None
                    self.restart_cause, self.phase = self.save_reason, WAIT
                elif self.phase == DETECT:
                    self.phase = WAIT
                else:  # RESTART
                    self.phase = UP
            except simpy.Interrupt as irq:
                self._interrupted(irq.cause)

    def _get_spares(self):
        """Take spare nodes for the nodes the job lacks; wait for repairs if the pool is short."""
        allowed_short = (self.p.dp - 1) // self._replicas_per_node() if self.p.continue_on_fewer_replicas else 0
        take = min(int(self.spares.level), self.missing)
        if take:
            self.spares.get(take)          # the pool has them: granted at once, level drops now
            self.missing -= take
        if self.missing > allowed_short:
            self.request_need = self.missing - allowed_short
            self.request = self.spares.get(self.request_need)
            yield self.request
            self.request = None
            self.missing -= self.request_need
        self.short = self.missing

    def _replicas_per_node(self) -> int:
        """Data-parallel replicas a missing node takes down: a node of g GPUs holds g / (TP·PP·CP)
        whole replicas (dp // nodes), or is part of one replica when a replica spans several nodes."""
        return max(1, self.p.dp // self.p.num_nodes)

    def _begin_run(self) -> None:
        p = self.p
        self.f_slow = (p.straggler_slowdown if self.slow else 1.0) * p.jitter_slowdown
        lost = min(p.dp - 1, self.short * self._replicas_per_node())
        self.f_short = p.dp / (p.dp - lost) if lost else 1.0
        self.plan = RunPlan(p.checkpoint, self.env.now, self.progress, self.f_slow * self.f_short,
                            committed=self.committed, pending=self.pending, lead=self.lead)
        self.lead = 0.0

    def _end_run(self):
        """Close the current run at now: progress, checkpoints, time split by cause, timeline."""
        plan = self.plan
        x = min(self.env.now - plan.t0, plan.duration())
        st = plan.at(x)
        gain = st.progress - plan.p0
        self.lost["stragglers"] += gain * (self.f_slow - 1.0)
        self.lost["fewer_replicas"] += gain * self.f_slow * (self.f_short - 1.0)
        self.lost["checkpoint"] += max(0.0, x - gain * plan.f)
        self.progress, self.committed, self.pending = st.progress, st.committed, st.pending
        self.checkpoints += st.checkpoints
        if self.timeline is not None:
            self.timeline.extend(plan.segments(x))
        self.plan = None
        return st

    def _cause(self) -> str:
        """The cause the current (non-up) phase's time is charged to."""
        if self.phase == SAVE:
            return self.save_reason
        if self.phase == RESTART:
            return self.restart_cause
        return _PHASE_CAUSE[self.phase]

    def _charge(self, cause: str) -> None:
        now = self.env.now
        self.lost[cause] += now - self.since
        if self.timeline is not None and now > self.since:
            self.timeline.append((self.since, now, _TIMELINE_STATE[self.phase]))
        self.since = now

    def _interrupted(self, cause) -> None:
        phase = self.phase
        st = None
        if phase == UP:
            st = self._end_run()
        else:
            self.left = max(0.0, self.left - (self.env.now - self.since))
            self._charge(self._cause())
            if self.request is not None:
                if self.request.triggered:         # granted this very instant
                    self.missing -= self.request_need
                else:
                    self.request.cancel()
                self.request = None
        if isinstance(cause, FailureClass):
            if phase in (UP, SAVE, RESTART):       # the job dies: back to the last durable state
                self.lost["lost_work"] += self.progress - self.committed
                self.progress, self.pending, self.lead = self.committed, None, 0.0
                self.left = self.detect() if self.p.mean_time_to_detect_s > 0 else 0.0
                self.restart_cause, self.phase = "restart", DETECT
        elif isinstance(cause, PlannedStop):
            if phase == UP:                        # otherwise it rides on the outage under way
                self.save_reason, self.phase, self.left = cause.reason, SAVE, self.p.save_s
        elif cause is SLOWER and phase == UP:      # same run, new speed; finish the block first
            self.lead = st.block_left

    # ---- the processes that interrupt it -------------------------------------------------
    def _tick(self) -> None:
        """Count an arrival; past the replica's limit, stop the whole replica (see run())."""
        self.events += 1
        if self.events > self.p.max_events and not self.abort.triggered:
            self.abort.succeed()

    def _interrupt(self, cause) -> None:
        if self.proc.is_alive:
            self.proc.interrupt(cause)

    def _failures(self, cls: FailureClass, gap):
        while True:
            yield self.env.timeout(gap())
            self.counts[cls.name] += 1
            self._tick()
            if cls.takes_node:
                self._lose_node()
            self._interrupt(cls)

    def _lose_node(self) -> None:
        """The node goes to repair and comes back to the spare pool (a callback, not a process:
        a repair only waits, and this keeps a replica's event count low)."""
        self.missing += 1
        self.env.timeout(self.repair()).callbacks.append(self._repaired)

    def _repaired(self, _event) -> None:
        self.spares.put(1)

    def _planned(self, gap):
        while True:
            yield self.env.timeout(gap())
            self.counts["planned_maintenance"] += 1
            self._tick()
            self._interrupt(PlannedStop("planned_maintenance"))

    def _stragglers(self, gap):
        while True:
            yield self.env.timeout(gap())
            self.counts["straggler"] += 1
            self._tick()
            self.slow += 1
            self.env.process(self._evict_straggler())
            if self.slow == 1 and self.phase == UP:
                self._interrupt(SLOWER)

    def _evict_straggler(self):
        """Once detected, the slow node is swapped for a spare at a stop with a checkpoint."""
        yield self.env.timeout(self.p.straggler_time_to_detect_s)
        self.slow -= 1
        self._lose_node()
        self._interrupt(PlannedStop("stragglers"))

    # ---- driving --------------------------------------------------------------------------
    def run(self) -> ReplicaOutcome:
        env, p = self.env, self.p
        cap = p.give_up_s if p.horizon_s is None else min(p.horizon_s, p.give_up_s)
        stops = [self.proc, self.abort] + ([env.timeout(cap)] if cap < float("inf") else [])
        env.run(until=env.any_of(stops))
        stop = ""
        if not self.finished:                      # the horizon, the cap or the limit cut it short
            stop = "events" if self.abort.triggered else (
                "horizon" if p.horizon_s is not None and p.horizon_s <= p.give_up_s else "cap")
            if self.phase == UP and self.plan is not None:
                self._end_run()
            elif self.phase != UP:
                self._charge(self._cause())
        return ReplicaOutcome(env.now, self.progress, self.finished, self.checkpoints,
                              dict(self.counts), dict(self.lost), self.timeline, stop)


def run_replica(params, seed: int, index: int, record: bool = False) -> ReplicaOutcome:
    """Replica ``index`` of a campaign: its random streams depend only on (seed, index)."""
    return Replica(params, Streams(seed, "replica", index), record).run()
