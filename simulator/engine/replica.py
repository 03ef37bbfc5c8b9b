"""One Monte Carlo replica of a training campaign as a discrete-event model (after SimPy's
machine shop).

A training process runs in closed form between events (engine/checkpointing.RunPlan). Failure
arrivals, one stream per class, interrupt it; so do planned maintenance and stragglers. After a
failure the job is down for detection, waits for spare nodes if a node was lost, restarts
(reschedule + communicator init + checkpoint load) and resumes from the newest durable checkpoint.
Broken nodes are repaired in wall time and go back to the spare pool.

The model was written as SimPy processes; it now runs on a minimal event loop of its own with
SimPy's semantics (events ordered by time, then priority — an interrupt is urgent — then creation
order; an interrupted wait is abandoned, a granted spare-pool request resumes the job one event
later), because a replica is ~1,000 interruptions and SimPy's per-event cost (event objects,
generator resumes, exceptions for interrupts) was most of a campaign's time (issue 17). The
numbers are the same, bit for bit.

Every wall second of the replica is charged to one cause, so that
productive + Σ time lost per cause = wall time (tests check it).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from heapq import heappop, heappush
from itertools import count

from simulator.engine.checkpointing import RunPlan
from simulator.engine.failures import CLASS_NAMES, FailureClass, interarrival
from simulator.rng import Sampler, Streams

CAUSES = ("lost_work", "detection", "waiting_for_spares", "restart", "checkpoint", "stragglers",
          "fewer_replicas", "planned_maintenance", "evaluation", "time_limit")
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


URGENT, NORMAL = 0, 1      # event priorities at one instant (SimPy's): interrupts come first
_STOP = object()           # the event that ends the run
_WAKE = object()           # the end of a wait of the training process (argument: its token)


class Replica:
    """The processes of one replica; ``run()`` drives the event loop and returns the outcome."""

    def __init__(self, params, streams: Streams, record: bool = False):
        p = self.p = params
        self.now = 0
        self._queue: list = []                 # (time, priority, sequence, action, argument)
        self._seq = count()
        self._token, self._resume = 0, None    # the training process's current wait
        self.level = p.spare_nodes             # spare nodes in the pool
        self.progress, self.committed, self.pending, self.lead = 0.0, 0.0, None, 0.0
        self.missing = self.short = self.slow = 0
        self.phase, self.since, self.left = UP, 0.0, 0.0      # left: of a timed phase
        self.restart_cause, self.save_reason, self.plan, self.run_s = "restart", "", None, 0.0
        self.request, self.request_need, self.granted = False, 0, False   # a wait for spares
        self.f_slow = self.f_short = 1.0
        self.job = 0                           # the current job (a restart starts a new one)
        self.checkpoints, self.finished = 0, False
        self.lost = dict.fromkeys(CAUSES, 0.0)
        self.counts = dict.fromkeys(CLASS_NAMES + ("planned_maintenance", "straggler", "time_limit"), 0)
        self.timeline: list | None = [] if record else None
        self.detect = Sampler(streams.get("detect"), "exponential", p.mean_time_to_detect_s)
        self.repair = Sampler(streams.get("repair"), "exponential", p.repair_s)
        self._at(0, self._start, None, URGENT)
        self.events, self.aborted, self.stopping = 0, False, False   # aborted: the interruption limit
        for cls in p.classes:
            if cls.rate_per_s > 0:
                gap = interarrival(streams.get("failure", cls.name), cls.rate_per_s, p.weibull_shape)
                self._every(gap, self._failure, cls)
        if p.planned_rate_per_s > 0:
            gap = interarrival(streams.get("planned"), p.planned_rate_per_s, None)  # scheduled
            self._every(gap, self._planned, PlannedStop("planned_maintenance"))
        if p.straggler_rate_per_s > 0:
            self._every(Sampler(streams.get("straggler"), "exponential", 1.0 / p.straggler_rate_per_s),
                        self._straggler, None)

    # ---- the event loop ------------------------------------------------------------------
    def _at(self, delay: float, action, arg, priority: int = NORMAL) -> None:
        """Call ``action(arg)`` ``delay`` seconds from now."""
        heappush(self._queue, (self.now + delay, priority, next(self._seq), action, arg))

    def _wait(self, delay: float, then) -> None:
        """The training process waits ``delay`` seconds, then runs ``then()`` (unless interrupted)."""
        self._token += 1
        self._resume = then
        heappush(self._queue, (self.now + delay, NORMAL, next(self._seq), _WAKE, self._token))

    def _stop_soon(self, _arg=None) -> None:
        """One of the run's ends happened: stop once the events already due now are processed
        (SimPy's any_of: the condition is itself an event)."""
        if not self.stopping:
            self.stopping = True
            self._at(0, _STOP, None)

    # ---- the training process -------------------------------------------------------------
    def _start(self, _arg) -> None:
        self._new_job()
        self._advance()

    def _new_job(self) -> None:
        """A job starts (the first, or a restart's): under a wall-clock limit it saves and exits
        just in time, its checkpoint finishing as the limit ends (Megatron --exit-duration-in-mins)."""
        self.job += 1
        if self.p.time_limit_s is not None:
            self._at(max(0.0, self.p.time_limit_s - self.p.save_s), self._time_limit, self.job)

    def _restart(self) -> None:
        """Enter the restart: a new job, which reschedules, initialises and loads the checkpoint."""
        self.phase, self.left = RESTART, self.p.restart_s
        self._new_job()

    def _advance(self) -> None:
        """Run the training process until it waits: for the end of its run or of a timed phase,
        or for spare nodes."""
        p = self.p
        while True:
            if self.phase == UP:
                self._begin_run()
                self._wait(self.run_s, self._run_done)
                return
            self.since = self.now
            if self.phase == WAIT:
                if self._get_spares():
                    return                     # resumes in _spares_granted
                self._charge("waiting_for_spares")
                self._restart()
                continue
            self._wait(self.left, self._phase_done)
            return

    def _run_done(self) -> None:
        self._end_run()
        self.finished = True
        self._at(0, self._stop_soon, None)     # the process's end is an event

    def _phase_done(self) -> None:
        self._charge(self._cause())
        if self.phase == SAVE:
            self.committed, self.pending = self.progress, None
            self.restart_cause, self.phase = self.save_reason, WAIT
        elif self.phase == DETECT:
            self.phase = WAIT
        else:  # RESTART
            self.phase = UP
        self._advance()

    def _get_spares(self) -> bool:
        """Take spare nodes for the nodes the job lacks; True: wait for repairs, the pool is short."""
        allowed_short = (self.p.dp - 1) // self._replicas_per_node() if self.p.continue_on_fewer_replicas else 0
        take = min(int(self.level), self.missing)
        if take:
            self.level -= take                 # the pool has them: granted at once
            self.missing -= take
        if self.missing > allowed_short:
            self.request_need = self.missing - allowed_short
            self.request, self.granted = True, False
            self._token += 1                   # waiting for the pool, not for a time
            return True
        self.short = self.missing
        return False

    def _spares_granted(self, token: int) -> None:
        if token != self._token:
            return
        self.request = False
        self.missing -= self.request_need
        self.short = self.missing
        self._charge("waiting_for_spares")
        self._restart()
        self._advance()

    def _replicas_per_node(self) -> int:
        """Data-parallel replicas a missing node takes down: a node of g GPUs holds g / (TP·PP·CP)
        whole replicas (dp // nodes), or is part of one replica when a replica spans several nodes."""
        return max(1, self.p.dp // self.p.num_nodes)

    def _begin_run(self) -> None:
        p = self.p
        self.f_slow = (p.straggler_slowdown if self.slow else 1.0) * p.jitter_slowdown
        lost = min(p.dp - 1, self.short * self._replicas_per_node())
        self.f_short = p.dp / (p.dp - lost) if lost else 1.0
        self.plan = RunPlan(p.checkpoint, self.now, self.progress,
                            self.f_slow * self.f_short * p.eval_slowdown,
                            committed=self.committed, pending=self.pending, lead=self.lead)
        self.run_s = self.plan.duration()       # wall seconds to the end of training, uninterrupted
        self.lead = 0.0

    def _end_run(self):
        """Close the current run at now: progress, checkpoints, time split by cause, timeline."""
        plan = self.plan
        x = min(self.now - plan.t0, self.run_s)
        st = plan.at(x)
        gain = st.progress - plan.p0
        self.lost["stragglers"] += gain * (self.f_slow - 1.0)
        self.lost["fewer_replicas"] += gain * self.f_slow * (self.f_short - 1.0)
        self.lost["evaluation"] += gain * self.f_slow * self.f_short * (self.p.eval_slowdown - 1.0)
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
        now = self.now
        self.lost[cause] += now - self.since
        if self.timeline is not None and now > self.since:
            self.timeline.append((self.since, now, _TIMELINE_STATE[self.phase]))
        self.since = now

    def _interrupted(self, cause) -> None:
        if self.finished:                      # it ended at this very instant
            return
        self._token += 1                       # abandon the wait under way
        phase = self.phase
        st = None
        if phase == UP:
            st = self._end_run()
        else:
            self.left = max(0.0, self.left - (self.now - self.since))
            self._charge(self._cause())
            if self.request:
                if self.granted:               # granted this very instant
                    self.missing -= self.request_need
                self.request = False
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
        self._advance()

    # ---- the processes that interrupt it -------------------------------------------------
    def _tick(self) -> None:
        """Count an arrival; past the replica's limit, stop the whole replica (see run())."""
        self.events += 1
        if self.events > self.p.max_events and not self.aborted:
            self.aborted = True
            self._at(0, self._stop_soon, None)

    def _interrupt(self, cause) -> None:
        """Interrupt the training process now. (SimPy delivers an interrupt as an urgent event at
        this instant, i.e. right after the arrival's handler, before anything else due now; every
        handler interrupts last, so calling it in place is the same.)"""
        self._interrupted(cause)

    def _every(self, gap, arrive, what) -> None:
        """Call ``arrive(what)`` at arrival times ``gap()`` apart, for the whole replica."""
        def fire(_arg) -> None:
            arrive(what)
            self._at(gap(), fire, None)

        self._at(gap(), fire, None)

    def _failure(self, cls: FailureClass) -> None:
        self.counts[cls.name] += 1
        self._tick()
        if cls.takes_node:
            self._lose_node()
        self._interrupt(cls)

    def _lose_node(self) -> None:
        """The node goes to repair and comes back to the spare pool."""
        self.missing += 1
        self._at(self.repair(), self._repaired, None)

    def _repaired(self, _arg) -> None:
        self.level += 1
        if self.request and not self.granted and self.level >= self.request_need:
            self.level -= self.request_need    # granted now; the job resumes one event later
            self.granted = True
            self._at(0, self._spares_granted, self._token)

    def _planned(self, stop: PlannedStop) -> None:
        self.counts["planned_maintenance"] += 1
        self._tick()
        self._interrupt(stop)

    def _time_limit(self, job: int) -> None:
        """The job's wall-clock limit is near: save and exit, unless it is already down or stopping
        (then the next job starts afresh anyway)."""
        if job != self.job or self.phase != UP or self.finished:
            return
        self.counts["time_limit"] += 1
        self._tick()
        self._interrupt(PlannedStop("time_limit"))

    def _straggler(self, _what) -> None:
        self.counts["straggler"] += 1
        self._tick()
        self.slow += 1
        self._at(self.p.straggler_time_to_detect_s, self._evict_straggler, None)
        if self.slow == 1 and self.phase == UP:
            self._interrupt(SLOWER)

    def _evict_straggler(self, _arg) -> None:
        """Once detected, the slow node is swapped for a spare at a stop with a checkpoint."""
        self.slow -= 1
        self._lose_node()
        self._interrupt(PlannedStop("stragglers"))

    # ---- driving --------------------------------------------------------------------------
    def run(self) -> ReplicaOutcome:
        p = self.p
        cap = p.give_up_s if p.horizon_s is None else min(p.horizon_s, p.give_up_s)
        if cap < float("inf"):
            self._at(cap, self._stop_soon, None)
        queue = self._queue
        while True:
            if not queue:
                raise RuntimeError("a campaign replica ran out of events before it ended")
            self.now, _, _, action, arg = heappop(queue)
            if action is _WAKE:
                if arg == self._token:             # else: an interrupt abandoned this wait
                    self._resume()
            elif action is _STOP:
                break
            else:
                action(arg)
        stop = ""
        if not self.finished:                      # the horizon, the cap or the limit cut it short
            stop = "events" if self.aborted else (
                "horizon" if p.horizon_s is not None and p.horizon_s <= p.give_up_s else "cap")
            if self.phase == UP and self.plan is not None:
                self._end_run()
            elif self.phase != UP:
                self._charge(self._cause())
        return ReplicaOutcome(self.now, self.progress, self.finished, self.checkpoints,
                              dict(self.counts), dict(self.lost), self.timeline, stop)


def run_replica(params, seed: int, index: int, record: bool = False) -> ReplicaOutcome:
    """Replica ``index`` of a campaign: its random streams depend only on (seed, index)."""
    return Replica(params, Streams(seed, "replica", index), record).run()
