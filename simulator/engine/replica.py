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

    @property
    def ettr(self) -> float:
        """Productive time over wall time (1 for a replica with no wall time)."""
        return self.progress_s / self.wall_s if self.wall_s > 0 else 1.0


URGENT, NORMAL = 0, 1      # event priorities at one instant (SimPy's): interrupts come first
_STOP = object()           # the event that ends the run
_INF = float("inf")
_NO_CHAIN = -_INF


class Replica:
    """The processes of one replica; ``run()`` drives the event loop and returns the outcome.

    The training process waits for one thing at a time (the end of its run or of a timed phase):
    that wait is held apart from the queue of the other events, as (time, sequence) — it is a
    NORMAL-priority event — and compared with the queue's head, so an interrupted wait is simply
    dropped instead of being left in the queue to be skipped."""

    chain_waits = True     # run waits that end before anything else at once (tests turn it off)

    def __init__(self, params, streams: Streams, record: bool = False):
        p = self.p = params
        self.now = 0
        self._queue: list = []                 # (time, priority, sequence, action, argument)
        self._seq = count()
        self._token, self._resume = 0, None    # the training process's current wait
        self._wake_t = self._wake_seq = None   # when it ends (None: not waiting for a time)
        self._limit = _INF                     # an arrival about to be queued (see fire)
        self._chained = False                  # a wait ran at once during the current arrival
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
        self._restart_s = p.restart_s
        self._per_node = max(1, p.dp // p.num_nodes)     # see _replicas_per_node
        self._max_events = p.max_events
        # detection and repair draw only once something fails: their streams are made then
        self.detect = Sampler(lambda: streams.get("detect"), "exponential", p.mean_time_to_detect_s).next
        self.repair = Sampler(lambda: streams.get("repair"), "exponential", p.repair_s).next
        self._at(0, self._start, None, URGENT)
        self.events, self.aborted, self.stopping = 0, False, False   # aborted: the interruption limit
        for cls in p.classes:
            if cls.rate_per_s > 0:
                gap = interarrival(streams.get("failure", cls.name), cls.rate_per_s, p.weibull_shape)
                self._every(gap.next, self._failure, cls)
        if p.planned_rate_per_s > 0:
            gap = interarrival(streams.get("planned"), p.planned_rate_per_s, None)  # scheduled
            self._every(gap.next, self._planned, PlannedStop("planned_maintenance"))
        if p.straggler_rate_per_s > 0:
            self._every(Sampler(streams.get("straggler"), "exponential", 1.0 / p.straggler_rate_per_s).next,
                        self._straggler, None)

    # ---- the event loop ------------------------------------------------------------------
    def _at(self, delay: float, action, arg, priority: int = NORMAL) -> None:
        """Call ``action(arg)`` ``delay`` seconds from now."""
        heappush(self._queue, (self.now + delay, priority, next(self._seq), action, arg))

    def _wait(self, delay: float, then) -> None:
        """The training process waits ``delay`` seconds, then runs ``then()`` (unless interrupted).

        A wait that ends before every queued event (and before the arrival the current handler is
        about to queue, ``_limit``) is the loop's next event whatever happens: it runs at once, at
        the same time (an end at the same instant as a queued event comes after it: it would be
        the newest event of that instant). A detection, restart and the next run after a failure
        thus take one event, not three."""
        if self._at_once(delay):
            then()
            return
        self._resume = then

    def _at_once(self, delay: float) -> bool:
        """A wait of the training process begins: True when it runs at once (the clock is moved to
        its end), else it is held until the loop reaches it (see ``_wait``)."""
        self._token += 1
        t = self.now + delay
        queue = self._queue
        if self.chain_waits and t < self._limit and (not queue or t < queue[0][0]):
            self.now = t
            self._chained = True
            return True
        self._resume = None
        self._wake_t = t
        self._wake_seq = next(self._seq)
        return False

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
        self.phase, self.left = RESTART, self._restart_s
        self._new_job()

    def _advance(self) -> None:
        """Run the training process until it waits: for the end of its run or of a timed phase,
        or for spare nodes."""
        while True:
            phase = self.phase
            if phase == UP:
                self._begin_run()
                self._wait(self.run_s, self._run_done)
                return
            self.since = self.now
            if phase == WAIT:
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
        phase = self.phase
        if phase == SAVE:
            self._charge(self.save_reason)
            self.committed, self.pending = self.progress, None
            self.restart_cause, self.phase = self.save_reason, WAIT
        elif phase == DETECT:
            self._charge("detection")
            self.phase = WAIT
        else:  # RESTART
            self._charge(self.restart_cause)
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
            self._wake_t = None
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
        return self._per_node

    def _begin_run(self) -> None:
        p = self.p
        f_slow = self.f_slow = (p.straggler_slowdown if self.slow else 1.0) * p.jitter_slowdown
        lost = min(p.dp - 1, self.short * self._per_node)
        f_short = self.f_short = p.dp / (p.dp - lost) if lost else 1.0
        plan = self.plan = RunPlan(p.checkpoint, self.now, self.progress, f_slow * f_short * p.eval_slowdown,
                                   committed=self.committed, pending=self.pending, lead=self.lead)
        self.run_s = plan.duration()            # wall seconds to the end of training, uninterrupted
        self.lead = 0.0

    def _end_run(self):
        """Close the current run at now: progress, checkpoints, time split by cause, timeline."""
        plan = self.plan
        x, run_s = self.now - plan.t0, self.run_s
        if run_s < x:                          # min(now - t0, run_s)
            x = run_s
        st = plan.at(x)
        gain = st.progress - plan.p0
        lost = self.lost
        lost["stragglers"] += gain * (self.f_slow - 1.0)
        lost["fewer_replicas"] += gain * self.f_slow * (self.f_short - 1.0)
        lost["evaluation"] += gain * self.f_slow * self.f_short * (self.p.eval_slowdown - 1.0)
        over = x - gain * plan.f
        lost["checkpoint"] += over if over > 0.0 else 0.0    # max(0.0, over)
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
        self._wake_t = None
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
            if phase == UP or phase == SAVE or phase == RESTART:   # the job dies: back to the last durable state
                self.lost["lost_work"] += self.progress - self.committed
                self.progress, self.pending, self.lead = self.committed, None, 0.0
                self.left = self.detect() if self.p.mean_time_to_detect_s > 0 else 0.0
                self.restart_cause, self.phase = "restart", DETECT
        elif isinstance(cause, PlannedStop):
            if phase == UP:                        # otherwise it rides on the outage under way
                self.save_reason, self.phase, self.left = cause.reason, SAVE, self.p.save_s
        elif cause is SLOWER and phase == UP:      # same run, new speed; finish the block first
            self.lead = st.block_left
        if self.phase == DETECT:
            self._recover()
        else:
            self._advance()

    def _recover(self) -> None:
        """From detection to the next run: what ``_advance`` and ``_phase_done`` do for the
        detection, the spares and the restart, without their dispatch while each wait runs at once
        (a wait that cannot is held, and ``_phase_done`` takes over when it ends)."""
        self.since = self.now
        if not self._at_once(self.left):
            self._resume = self._phase_done
            return
        self._charge("detection")
        self.phase = WAIT
        self.since = self.now
        if self._get_spares():
            return                             # resumes in _spares_granted
        self._charge("waiting_for_spares")
        self._restart()
        self.since = self.now
        if not self._at_once(self.left):
            self._resume = self._phase_done
            return
        self._charge(self.restart_cause)
        self.phase = UP
        self._begin_run()
        self._wait(self.run_s, self._run_done)

    # ---- the processes that interrupt it -------------------------------------------------
    def _tick(self) -> None:
        """Count an arrival; past the replica's limit, stop the whole replica (see run())."""
        self.events += 1
        if self.events > self._max_events and not self.aborted:
            self.aborted = True
            self._at(0, self._stop_soon, None)

    def _interrupt(self, cause) -> None:
        """Interrupt the training process now. (SimPy delivers an interrupt as an urgent event at
        this instant, i.e. right after the arrival's handler, before anything else due now; every
        handler interrupts last, so calling it in place is the same.)"""
        self._interrupted(cause)

    def _every(self, gap, arrive, what) -> None:
        """Call ``arrive(what)`` at arrival times ``gap()`` apart, for the whole replica."""
        queue, seq = self._queue, self._seq
        # a job's time limit is queued when it (re)starts: waits run at once after an arrival would
        # queue it before the arrival, so with a time limit they wait for the loop
        fire_chain = self.p.time_limit_s is None

        def fire(_arg) -> None:
            nxt = self.now + gap()                   # queued once the arrival is handled
            self._limit = nxt if fire_chain else _NO_CHAIN
            self._chained = False
            arrive(what)
            self._limit = _INF
            heappush(queue, (nxt, NORMAL, next(seq), fire, None))
            if self._chained and self._wake_t is not None:
                # a wait reached through waits run at once was made, in the loop's order, after
                # this arrival was queued: it comes after it at the same instant
                self._wake_seq = next(seq)

        heappush(queue, (self.now + gap(), NORMAL, next(seq), fire, None))

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
            wake = self._wake_t
            if wake is not None:               # the training process's wait, if it comes first
                if queue:
                    head = queue[0]
                    first = wake < head[0] or (wake == head[0] and head[1] == NORMAL
                                               and self._wake_seq < head[2])
                else:
                    first = True
                if first:
                    self.now, self._wake_t = wake, None
                    self._resume()
                    continue
            if not queue:
                raise RuntimeError("a campaign replica ran out of events before it ended")
            self.now, _, _, action, arg = heappop(queue)
            if action is _STOP:
                break
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
