"""Checkpoint cost, the Young/Daly interval, and progress between events in closed form.

A run of training between two events (failure, planned stop, straggler) is deterministic: compute
at a rate of 1/f work-seconds per wall-second (f = slowdown), with a checkpoint block every Δ
work-seconds of progress. ``RunPlan`` answers "when does this run finish?" and "what is the state
after x seconds?" with a few divisions, so the campaign never steps through training steps or
checkpoints one by one.

Checkpoints sit on a fixed grid of progress (every K steps, Δ = K × step time), never at the very
end. Sync: the job stops for the whole write w = size / storage bandwidth and the checkpoint is
durable when the write ends. Async: the job stops only for the snapshot b (copy to host memory);
the write to storage runs behind training and the checkpoint is durable w later. The next snapshot
waits for the previous write (a stall of max(0, w − Δ·f)), so at most one write is in flight.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from typing import NamedTuple

_NEVER = -math.inf


@dataclass(frozen=True)
class CheckpointModel:
    """What one checkpoint costs and where the checkpoints sit on the progress axis."""

    size_bytes: float
    write_s: float           # w: size / storage bandwidth
    blocking_s: float        # b: the part that stops training (sync: = w)
    is_async: bool
    interval_steps: int      # K
    step_time_s: float       # s
    train_steps: int         # N

    @cached_property   # the model is frozen: computed once per campaign
    def interval_s(self) -> float:
        """Δ: work-seconds of training between two checkpoints."""
        return self.interval_steps * self.step_time_s

    @cached_property
    def work_s(self) -> float:
        """W: work-seconds of the whole run (no failures, no checkpoints)."""
        return self.train_steps * self.step_time_s

    @cached_property
    def last_index(self) -> int:
        """Index of the last checkpoint on the grid: checkpoints at j·K steps with j·K < N."""
        return (self.train_steps - 1) // self.interval_steps

    def grid(self, index: int) -> float:
        return index * self.interval_s

    def index_of(self, progress: float) -> int:
        """Grid index at or just below ``progress`` (tolerant of float round-off)."""
        return int(math.floor(progress / self.interval_s + 1e-9))

    def block_s(self, f: float) -> float:
        """Wall time of a checkpoint block between two checkpoints of the same run."""
        if not self.is_async:
            return self.write_s
        return self.blocking_s + max(0.0, self.write_s - self.interval_s * f)

    def lag_s(self) -> float:
        """From the end of a block until the checkpoint is durable."""
        return self.write_s if self.is_async else 0.0


def young_interval(delta_s: float, mtbf_s: float) -> float:
    """Young (1974): τ = √(2·δ·M), δ checkpoint cost, M mean time between failures."""
    return math.sqrt(2.0 * delta_s * mtbf_s)


def daly_interval(delta_s: float, mtbf_s: float) -> float:
    """Daly (2006), higher order: √(2δM)·[1 + ⅓√(δ/2M) + δ/(18M)] − δ for δ < 2M, else M."""
    if delta_s >= 2.0 * mtbf_s:
        return mtbf_s
    x = delta_s / (2.0 * mtbf_s)
    return math.sqrt(2.0 * delta_s * mtbf_s) * (1.0 + math.sqrt(x) / 3.0 + x / 9.0) - delta_s


class RunState(NamedTuple):
    """The state of a run ``elapsed`` seconds after it started (see RunPlan.at; a tuple: one is
    made at every event of a campaign)."""

    progress: float                       # work-seconds done (run start + gained)
    committed: float                      # progress of the newest durable checkpoint
    pending: tuple[float, float] | None   # (progress, absolute time it becomes durable)
    block_left: float                     # > 0: inside a checkpoint block, this much left
    checkpoints: int                      # checkpoint blocks finished in this run


class RunPlan:
    """One uninterrupted run of training from (t0, progress p0) at slowdown f, in closed form.

    ``lead`` is the remainder of a checkpoint block that an event interrupted without ending the
    run (a straggler appearing): it checkpoints p0 and is finished first. ``committed``/``pending``
    carry the durable and the in-flight checkpoint over from before the run.
    """

    __slots__ = ("ck", "t0", "p0", "f", "committed", "pending", "lead", "i0", "n", "lead_done_at", "g1", "a1",
                 "c1", "c", "cycle", "_ends", "_lag", "_dt")

    # One is made at every event of a campaign: the checkpoint model's values are read once and the
    # arithmetic is the model's own (grid(i) = i·Δ, index_of, block_s, lag_s), in the same order.
    def __init__(self, ck: CheckpointModel, t0: float, p0: float, f: float, *, committed: float,
                 pending: tuple[float, float] | None = None, lead: float = 0.0):
        self.ck, self.t0, self.p0, self.f = ck, t0, p0, f
        self.committed, self.pending, self.lead = committed, pending, lead
        dt = self._dt = ck.interval_s
        is_async = ck.is_async
        lag = self._lag = ck.write_s if is_async else 0.0                 # ck.lag_s()
        i0 = self.i0 = int(math.floor(p0 / dt + 1e-9))                   # ck.index_of(p0)
        self.n = max(0, ck.last_index - i0)                                # regular blocks ahead
        self.lead_done_at = t0 + lead + lag if lead > 0 else _NEVER
        g1 = self.g1 = (i0 + 1) * dt
        a1 = self.a1 = (g1 - p0) * f                                       # compute before block 1
        if is_async:
            prev_done = self.lead_done_at if lead > 0 else (pending[1] if pending else _NEVER)
            start1 = t0 + lead + a1
            self.c1 = ck.blocking_s + max(0.0, prev_done - start1)
            c = self.c = ck.blocking_s + max(0.0, ck.write_s - dt * f)     # ck.block_s(f)
        else:
            self.c1 = c = self.c = ck.write_s
        self.cycle = dt * f + c
        self._ends = t0 + lead + a1 + self.c1                              # end of block 1

    def duration(self) -> float:
        """Wall seconds from t0 until the last step is done."""
        if self.n == 0:
            return self.lead + (self.ck.work_s - self.p0) * self.f
        g_n = (self.i0 + self.n) * self._dt
        return self.lead + self.a1 + self.c1 + (self.n - 1) * self.cycle + (self.ck.work_s - g_n) * self.f

    def _block_end(self, m: int) -> float:
        """Absolute end of regular block m (1-based)."""
        return self._ends + (m - 1) * self.cycle

    def _where(self, x: float) -> tuple[float, float, int]:
        """(progress, block time left, blocks finished) at elapsed x."""
        f = self.f
        if x < self.lead:
            return self.p0, self.lead - x, 0
        y = x - self.lead
        if self.n == 0 or y < self.a1:
            return min(self.p0 + y / f, self.ck.work_s), 0.0, 0
        y -= self.a1
        if y < self.c1:
            return self.g1, self.c1 - y, 0
        y -= self.c1
        n, cycle, dt = self.n, self.cycle, self._dt
        k = min(int(y // cycle), n - 1) if n > 1 else 0
        y = max(0.0, y - k * cycle)
        m = 1 + k
        g_m = (self.i0 + m) * dt
        compute = dt * f
        if m == n or y < compute:
            return min(g_m + y / f, self.ck.work_s), 0.0, m
        return (self.i0 + m + 1) * dt, max(0.0, self.c - (y - compute)), m

    def at(self, x: float) -> RunState:
        """State after x wall seconds (0 <= x <= duration())."""
        lead = self.lead
        if x < lead or self.n == 0 or x - lead < self.a1:     # _where's first cases, inline
            if x < lead:
                progress, left = self.p0, lead - x
            else:
                progress, work = self.p0 + (x - lead) / self.f, self.ck.work_s
                if work < progress:                           # min(progress, work)
                    progress = work
                left = 0.0
            m = 0
        else:
            progress, left, m = self._where(x)
        committed, pending = self.committed, None
        if m == 0 and (lead <= 0 or x < lead):                # no block of this run can be durable
            if self.pending is None:
                return RunState(progress, committed, None, left, 0)
            cands = [self.pending]
        else:
            # candidates (progress, durable at), newest first: blocks m and m - 1, the lead
            # block, the checkpoint in flight before the run
            lag, cands = self._lag, []
            if m >= 1:
                cands.append(((self.i0 + m) * self._dt, self._ends + (m - 1) * self.cycle + lag))
                if m >= 2:
                    cands.append(((self.i0 + m - 1) * self._dt, self._ends + (m - 2) * self.cycle + lag))
            if lead > 0 and x >= lead:
                cands.append((self.p0, self.lead_done_at))
            if self.pending is not None:
                cands.append(self.pending)
        now = self.t0 + x
        for grid, done in cands:
            if done <= now:
                committed = max(committed, grid)
                break
            if pending is None and grid > committed:
                pending = (grid, done)
        if pending is not None and pending[0] <= committed:
            pending = None
        return RunState(progress, committed, pending, left, m)

    def segments(self, x: float) -> list[tuple[float, float, str]]:
        """Timeline of [t0, t0 + x] as (start, end, "up" | "checkpoint") pieces."""
        out: list[tuple[float, float, str]] = []

        def add(a: float, b: float, state: str) -> bool:
            b = min(b, x)
            if b > a:
                out.append((self.t0 + a, self.t0 + b, state))
            return b >= x

        t = 0.0
        if self.lead > 0 and add(0.0, self.lead, "checkpoint"):
            return out
        t = self.lead
        if self.n == 0:
            add(t, x, "up")
            return out
        if add(t, t + self.a1, "up") or add(t + self.a1, t + self.a1 + self.c1, "checkpoint"):
            return out
        t += self.a1 + self.c1
        compute = self.ck.interval_s * self.f
        for _ in range(self.n - 1):
            if add(t, t + compute, "up") or add(t + compute, t + compute + self.c, "checkpoint"):
                return out
            t += self.cycle
        add(t, x, "up")
        return out
