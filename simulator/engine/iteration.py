"""One training step as a SimPy discrete-event simulation of one data-parallel replica.

Every pipeline stage is a process that runs its schedule's tasks (engine/schedules.py) on a compute
stream; activations and gradients travel between stages over point-to-point links (one simpy
Resource per direction); each stage's data-parallel stream reduces gradient buckets as the last
microbatch's backward produces them and gathers parameters for the first forward (distributed
optimizer). The other replicas are symmetric: their traffic is in the collective costs. Task times
come from the same cost functions as the closed form (cost/stage.py, cost/step.py).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import simpy

from simulator.config.scenario import Scenario
from simulator.cost import comm
from simulator.cost.efficiency import DEFAULT, Efficiency
from simulator.cost.stage import StageParts, StageTimes, stage_parts
from simulator.cost.step import (
    dp_cost, dp_sm_share, grad_exposed, offload_exposed, optimizer_time, p2p_time, zero3_exposed,
)
from simulator.engine.schedules import Task, peak_in_flight, schedule
from simulator.engine.trace import Tracer


@dataclass(frozen=True)
class IterationResult:
    step_time: float
    breakdown: dict                       # seconds per cause, summing to step_time
    stage_busy: tuple[float, ...]         # compute-stream busy seconds per stage
    stage_utilization: tuple[float, ...]  # busy / step time
    peak_in_flight: tuple[int, ...]       # microbatches whose activations a stage holds at once
    critical_stage: int
    trace: list = field(default_factory=list, repr=False)
    # per stage: (start, end, level) with level 2 = computing, 1 = communicating (exposed in-stage
    # collectives, pipeline waits excluded, or data-parallel traffic); gaps are idle waiting
    activity: tuple = field(default=(), repr=False)


@dataclass(frozen=True)
class StepInputs:
    """Everything the step DES needs, already costed: the engine itself knows no hardware."""

    schedule: str
    p: int
    m: int
    v: int
    chunk_work: tuple                     # per stage, per model chunk: StageTimes of one microbatch
    p2p: float                            # one stage-to-stage transfer
    dp: tuple                             # per stage: DPCost
    overlap_grad: bool
    overlap_gather: bool
    optimizer: tuple                      # per stage: optimizer step seconds
    zero3: tuple                          # per stage: exposed ZeRO-3 communication seconds
    slowdown: tuple                       # per stage: compute slowdown factor (stragglers)
    offload: tuple = ()                   # per stage: exposed activation offload transfers (seconds)


@dataclass
class _Stage:
    """Per-stage state while the step runs."""

    index: int
    tasks: list[Task]
    work: dict                            # (chunk, kind) -> _Work
    slowdown: float
    clock: float = 0.0                    # the stage's own time (never behind the simulation clock)
    busy: float = 0.0
    wait_data: float = 0.0
    wait_gather: float = 0.0
    compute_end: float = 0.0
    dp_free: float = 0.0                  # when the data-parallel stream is next free
    dp_end: float = 0.0
    done: float = 0.0
    split: dict = field(default_factory=dict)   # cause -> seconds of busy time
    gate: list = field(default_factory=list)    # per task: (stage, task, transfer s) it waited for
    activity: list = field(default_factory=list)


CAUSES = ("compute", "recompute", "tp_comm", "cp_comm", "ep_comm")


def _chunk_work(part: StageParts, layers: tuple[int, ...]) -> list[StageTimes]:
    """Split a stage's per-microbatch work over its model chunks by their layer counts (head in the
    first chunk, tail in the last)."""
    from simulator.cost.stage import add, scale

    total = sum(layers)
    chunks = [scale(part.layers, n / total if total else 0.0) for n in layers]
    chunks[0] = add(chunks[0], part.head)
    chunks[-1] = add(chunks[-1], part.tail)
    chunks[0] = add(chunks[0], part.accum)   # after the microbatch's last backward on the rank
    return chunks


def _durations(w: StageTimes, kind: str, split_w: bool) -> dict:
    """Seconds of a task by cause: forward, backward (+recompute), or weight gradient."""
    tot = w.compute + w.recompute + w.tp + w.cp + w.ep
    if kind == "F":
        frac = w.fwd / tot if tot else 0.0
        rec = 0.0
    else:
        frac = w.bwd / tot if tot else 0.0
        rec = w.recompute
    comm_part = {k: getattr(w, k) * frac for k in ("tp", "cp", "ep")}
    compute = w.fwd - sum(comm_part.values()) if kind == "F" else w.bwd - rec - sum(comm_part.values())
    host = w.host_fwd if kind == "F" else w.host_bwd   # waiting for the host's kernel launches
    accum = w.accum if kind == "B" else 0.0            # the unfused gradient-accumulation pass
    out = {"compute": compute - host - accum, "recompute": rec, "tp_comm": comm_part["tp"], "cp_comm": comm_part["cp"],
           "ep_comm": comm_part["ep"]}
    if host:
        out["host_bound"] = host
    if accum:
        out["grad_accum"] = accum
    if split_w and kind == "B":
        out["compute"] -= w.wgrad
    if kind == "W":
        out = {"compute": w.wgrad, "recompute": 0.0, "tp_comm": 0.0, "cp_comm": 0.0, "ep_comm": 0.0}
    return out


@dataclass(frozen=True)
class _Work:
    """One task kind of one chunk on one stage, costed once: seconds by cause, total, computing."""

    d: dict
    total: float
    busy: float


def _work(w: StageTimes, kind: str, split_w: bool, slowdown: float) -> _Work:
    d = _durations(w, kind, split_w)
    return _Work(d, sum(d.values()) * slowdown, (d["compute"] + d["recompute"] + d.get("grad_accum", 0.0)) * slowdown)


class _Step:
    """Builds and runs the DES for one step from costed inputs.

    Conservative synchronisation: a stage runs through its schedule on its own clock while the data
    its next task needs has already been sent, and only when it must wait for data still to be
    produced does it advance the simulation clock to its own and wait for the send event. The
    point-to-point links and each stage's data-parallel stream serve their requests in order and
    are fed by one stage each, so they are kept as the time they are next free rather than as
    resources. Every time is the same max-plus expression of task and transfer times that a
    process-per-transfer simulation computes, in the same floating-point order.
    """

    def __init__(self, inp: StepInputs, tracer: Tracer | None):
        self.inp, self.tracer = inp, tracer
        self.p, self.m, self.v = inp.p, inp.m, inp.v
        self.p2p = inp.p2p
        self.env = simpy.Environment()
        self.split_w = inp.schedule == "zb_h1"
        kinds = ("F", "B", "W") if self.split_w else ("F", "B")
        self.stages = []
        for i in range(self.p):
            work = {(c, k): _work(w, k, self.split_w, inp.slowdown[i])
                    for c, w in enumerate(inp.chunk_work[i]) for k in kinds}
            self.stages.append(_Stage(i, schedule(inp.schedule, self.p, self.m, i, self.v), work,
                                      inp.slowdown[i]))
        self.sent: dict = {}        # key -> (arrival time, source stage, source task, transfer seconds)
        self.waiting: dict = {}     # key -> event a stage waits on until the data is sent
        self.link_free = [[0.0, 0.0] for _ in range(self.p)]   # per stage: downstream, upstream
        self.dp = list(inp.dp)
        self.gather_end: dict = {}  # stage -> per chunk, per bucket: when its parameters are gathered

    # -- data movement -------------------------------------------------------------------------
    def _send(self, st: _Stage, task_idx: int, direction: int, key) -> None:
        """Send on the stage's link in that direction: queued behind its earlier sends."""
        link = self.link_free[st.index]
        side = 0 if direction > 0 else 1
        start = max(st.clock, link[side])
        end = start + self.p2p
        link[side] = end
        if self.tracer and self.p2p > 0:
            self.tracer.slice(st.index, "pp send" if direction > 0 else "pp send (grad)", f"{key[0]}{key[1]}",
                              start, end)
        self.sent[key] = (end, st.index, task_idx, end - st.clock)
        ev = self.waiting.pop(key, None)
        if ev is not None:
            ev.succeed()

    def _receive(self, st: _Stage, idx: int, key):
        """Wait for data: yields to the simulation only when it has not been sent yet."""
        if key not in self.sent:
            if st.clock > self.env.now:
                yield self.env.timeout(st.clock - self.env.now)
            if key not in self.sent:
                ev = self.waiting[key] = self.env.event()
                yield ev
        arrive, src, src_task, transfer = self.sent[key]
        if arrive > st.clock:
            st.wait_data += arrive - st.clock
            st.clock = arrive
            st.gate[idx] = (src, src_task, transfer)

    # -- data-parallel stream -----------------------------------------------------------------
    def _dp_job(self, st: _Stage, seconds: float, name: str, ready: float) -> float:
        """A job on the stage's data-parallel stream, requested at ``ready``; returns its end."""
        start = max(ready, st.dp_free)
        end = start + seconds
        st.dp_free = end
        st.dp_end = max(st.dp_end, end)
        st.activity.append((start, end, 1))
        if self.tracer:
            self.tracer.slice(st.index, "dp comm", name, start, end)
        return end

    def _chunk_buckets(self, c) -> int:
        """DDP buckets of one model chunk: the stage's buckets shared over its chunks."""
        return max(1, -(-c.buckets // self.v))

    def _start_gathers(self, st: _Stage):
        c = self.dp[st.index]
        if c.gather <= 0:
            return
        per_chunk = c.gather / self.v
        k = self._chunk_buckets(c) if self.inp.overlap_gather else 1
        self.gather_end[st.index] = [[self._dp_job(st, per_chunk / k, f"param all-gather {chunk}.{b}", 0.0)
                                      for b in range(k)] for chunk in range(self.v)]

    # -- compute stream -----------------------------------------------------------------------
    def _run_task(self, st: _Stage, idx: int, task: Task, pieces: int, gather, grad_piece: float):
        """Run one task on the stage's clock, in ``pieces`` when parameter gathers gate its pieces or
        gradient buckets leave after each."""
        w = st.work[(task.chunk, task.kind)]
        step, busy = w.total / pieces, w.busy / pieces
        for k in range(pieces):
            if gather is not None:
                ready = gather[k] if self.inp.overlap_gather else max(g[0] for g in gather)
                if ready > st.clock:
                    st.wait_gather += ready - st.clock
                    st.clock = ready
                    st.gate[idx] = None
            start = st.clock
            st.clock = start + step
            st.activity.append((start, start + busy, 2))
            if st.clock > start + busy:
                st.activity.append((start + busy, st.clock, 1))
            if self.tracer:
                self._trace_task(st, task, start, w.d, st.slowdown / pieces)
            if grad_piece > 0:
                self._dp_job(st, grad_piece, f"grad reduce {k}", st.clock)
        split = st.split   # summed task by task, in schedule order (the same float sums every run)
        for cause, sec in w.d.items():
            split[cause] = split.get(cause, 0.0) + sec * st.slowdown
        st.busy += w.total

    def _trace_task(self, st: _Stage, task: Task, start: float, d: dict, factor: float):
        label = f"{task.kind}{task.microbatch}" + (f".{task.chunk}" if self.v > 1 else "")
        t = start
        for cause in (*CAUSES, "host_bound", "grad_accum"):
            sec = d.get(cause, 0.0) * factor
            if sec > 0:
                # the unfused gradient-accumulation passes are kernels too: on the compute track
                track = "compute" if cause in ("compute", "recompute", "grad_accum") else cause.replace("_", " ")
                self.tracer.slice(st.index, track, label if cause == "compute" else f"{label} {cause}",
                                  t, t + sec)
                t += sec

    def _stage_proc(self, st: _Stage):
        c = self.dp[st.index]
        V = self.p * self.v
        last_b = {}   # chunk -> index of the task that completes its weight gradients
        first_f = {}
        for idx, t in enumerate(st.tasks):
            if t.kind == ("W" if self.split_w else "B"):
                last_b[t.chunk] = idx
            if t.kind == "F" and t.chunk not in first_f:
                first_f[t.chunk] = idx
        overlap = self.inp.overlap_grad
        grad_per_chunk = c.grad / self.v
        gathers = self.gather_end.get(st.index)
        st.gate = [None] * len(st.tasks)
        for idx, task in enumerate(st.tasks):
            vs = task.chunk * self.p + st.index
            if task.kind == "F" and vs > 0:
                yield from self._receive(st, idx, ("act", task.microbatch, vs))
            elif task.kind == "B" and vs < V - 1:
                yield from self._receive(st, idx, ("grad", task.microbatch, vs))
            pieces, gather, grad_piece = 1, None, 0.0
            if task.kind == "F" and gathers is not None and first_f.get(task.chunk) == idx:
                gather = gathers[task.chunk] if self.inp.overlap_gather else gathers
                pieces = len(gathers[task.chunk])
            if idx == last_b.get(task.chunk) and overlap and grad_per_chunk > 0:
                pieces = self._chunk_buckets(c)
                grad_piece = grad_per_chunk / pieces
            self._run_task(st, idx, task, pieces, gather, grad_piece)
            if task.kind == "F" and vs < V - 1:
                self._send(st, idx, 1, ("act", task.microbatch, vs + 1))
            elif task.kind == "B" and vs > 0:
                self._send(st, idx, -1, ("grad", task.microbatch, vs - 1))
        st.compute_end = st.clock
        if not overlap and grad_per_chunk > 0:
            self._dp_job(st, c.grad, "grad reduce", st.compute_end)
        if c.tied > 0:   # the tied embedding's gradients, once they are final
            self._dp_job(st, c.tied, "tied embedding grad all-reduce", st.compute_end)
        st.dp_end = max(st.dp_end, st.compute_end)
        z3, opt = self.inp.zero3[st.index], self.inp.optimizer[st.index]
        if self.inp.offload:
            z3 += self.inp.offload[st.index]
        start = st.dp_end
        st.done = start + (z3 + opt)
        st.activity.append((start, start + z3, 1))
        st.activity.append((start + z3, st.done, 2))
        if self.tracer and z3 > 0:   # exposed ZeRO-2/3 (and offload) time the step waits for
            self.tracer.slice(st.index, "dp comm", "exposed DP communication", start, start + z3)
        if self.tracer and opt > 0:
            self.tracer.slice(st.index, "compute", "optimizer step", start + z3, st.done)
        st.split["zero3"] = z3
        if st.done > self.env.now:
            yield self.env.timeout(st.done - self.env.now)

    def run(self) -> list[_Stage]:
        for st in self.stages:
            self._start_gathers(st)
            self.env.process(self._stage_proc(st))
        self.env.run()
        if self.waiting:
            raise RuntimeError(f"pipeline schedule {self.inp.schedule!r} deadlocks: stages wait for "
                               f"{sorted(self.waiting)[:3]}")
        return self.stages


def _pp_on_critical_path(stages: list[_Stage], last: int) -> float:
    """Transfer seconds on the chain of waits that ends the step: from the last task of the stage
    that finishes last, back through each task's predecessor (the transfer it waited for, or the task
    before it on its stage)."""
    total, s, i = 0.0, last, len(stages[last].tasks) - 1
    while i >= 0:
        g = stages[s].gate[i]
        if g is None:
            i -= 1
        else:
            s, i, sec = g
            total += sec
    return total


def step_inputs(s: Scenario, eff: Efficiency = DEFAULT,
                slowdown: tuple[float, ...] | None = None) -> StepInputs:
    """Cost a Scenario's step with the shared cost functions (cost/stage.py, cost/step.py)."""
    from dataclasses import replace

    lay = s.layout
    tiers = comm.tiers_of(s.cluster, s.gpu, eff, s.num_gpus)
    parts = stage_parts(s, eff, tiers)
    dp = [dp_cost(s, i, tiers) for i in range(lay.pp)]
    zero3 = [0.0] * lay.pp
    if lay.zero_stage >= 3:   # ZeRO-3 gathers inside the step: closed-form exposure, no bucket overlap
        zero3 = [zero3_exposed(s, i, parts[i].total, tiers, eff) for i in range(lay.pp)]
        dp = [replace(c, grad=0.0, gather=0.0) for c in dp]
    elif any(c.per_microbatch for c in dp):   # ZeRO-2: per-microbatch reduce-scatters, closed form too
        par0 = s.workload.parallelism
        zero3 = [grad_exposed(c, parts[i].total, lay.num_microbatches, par0.overlap_grad_reduce,
                              dp_sm_share(s)) for i, c in enumerate(dp)]
        dp = [replace(c, grad=0.0) for c in dp]
    par = s.workload.parallelism
    return StepInputs(
        schedule=lay.schedule, p=lay.pp, m=lay.num_microbatches, v=lay.vpp,
        chunk_work=tuple(tuple(_chunk_work(pt, lay.chunk_layers(i))) for i, pt in enumerate(parts)), p2p=p2p_time(s, tiers),
        dp=tuple(dp), overlap_grad=par.overlap_grad_reduce, overlap_gather=par.overlap_param_gather,
        optimizer=tuple(optimizer_time(s, i, eff, lay.num_microbatches * (pt.total.compute + pt.total.recompute))
                        for i, pt in enumerate(parts)), zero3=tuple(zero3),
        offload=tuple(offload_exposed(s, pt.total) if i == 0 else 0.0 for i, pt in enumerate(parts)),
        slowdown=tuple(slowdown or (1.0,) * lay.pp))


def run_step(inp: StepInputs, trace: bool = False) -> IterationResult:
    """Run the step DES. The breakdown: work causes of the busiest stage, DP tail and optimizer of
    the stage that finishes last, point-to-point cost as the transfer time on the step's critical
    path (from this run's own records), and the bubble as what remains."""
    tracer = Tracer(inp.p) if trace else None
    stages = _Step(inp, tracer).run()
    step = max(st.done for st in stages)
    last = max(range(len(stages)), key=lambda i: stages[i].done)
    busiest = max(range(len(stages)), key=lambda i: stages[i].busy)
    b, c = stages[busiest], stages[last]
    breakdown = {k: b.split.get(k, 0.0) for k in CAUSES}
    for extra in ("host_bound", "grad_accum"):
        if b.split.get(extra):
            breakdown[extra] = b.split[extra]
    off = inp.offload[last] if inp.offload else 0.0
    dp = (c.done - c.compute_end - inp.optimizer[last] - off) + c.wait_gather
    pp = _pp_on_critical_path(stages, last) if inp.p > 1 and inp.p2p > 0 else 0.0
    breakdown["pp_comm"] = min(pp, max(0.0, step - sum(breakdown.values()) - dp - inp.optimizer[last] - off))
    breakdown["dp_comm"] = dp
    breakdown["optimizer"] = inp.optimizer[last]
    if off:
        breakdown["offload"] = off
    breakdown["bubble"] = max(0.0, step - sum(breakdown.values()))
    busy = tuple(st.busy for st in stages)
    return IterationResult(step, breakdown, busy, tuple(x / step for x in busy),
                           tuple(peak_in_flight(st.tasks) for st in stages), busiest,
                           tracer.events if tracer else [], tuple(tuple(st.activity) for st in stages))


def simulate_step(s: Scenario, eff: Efficiency = DEFAULT, *, slowdown: tuple[float, ...] | None = None,
                  trace: bool = False) -> IterationResult:
    """One step of a Scenario as a discrete-event simulation."""
    return run_step(step_inputs(s, eff, slowdown), trace)
