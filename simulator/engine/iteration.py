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
from simulator.cost.step import dp_cost, grad_exposed, offload_exposed, optimizer_time, p2p_time, zero3_exposed
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

    def without_p2p(self) -> "StepInputs":
        from dataclasses import replace

        return replace(self, p2p=0.0)


@dataclass
class _Stage:
    """Per-stage state while the step runs."""

    index: int
    tasks: list[Task]
    chunk_work: list[StageTimes]          # per model chunk, one microbatch
    slowdown: float
    compute: simpy.Resource
    dp: simpy.Resource
    busy: float = 0.0
    wait_data: float = 0.0
    wait_gather: float = 0.0
    compute_end: float = 0.0
    dp_end: float = 0.0
    done: float = 0.0
    split: dict = field(default_factory=dict)   # cause -> seconds of busy time
    dp_jobs: list = field(default_factory=list)
    activity: list = field(default_factory=list)


def _chunk_work(part: StageParts, layers: tuple[int, ...]) -> list[StageTimes]:
    """Split a stage's per-microbatch work over its model chunks by their layer counts (head in the
    first chunk, tail in the last)."""
    from simulator.cost.stage import add, scale

    total = sum(layers)
    chunks = [scale(part.layers, n / total) for n in layers]
    chunks[0] = add(chunks[0], part.head)
    chunks[-1] = add(chunks[-1], part.tail)
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
    out = {"compute": compute, "recompute": rec, "tp_comm": comm_part["tp"], "cp_comm": comm_part["cp"],
           "ep_comm": comm_part["ep"]}
    if split_w and kind == "B":
        out["compute"] -= w.wgrad
    if kind == "W":
        out = {"compute": w.wgrad, "recompute": 0.0, "tp_comm": 0.0, "cp_comm": 0.0, "ep_comm": 0.0}
    return out


class _Step:
    """Builds and runs the DES for one step from costed inputs."""

    def __init__(self, inp: StepInputs, tracer: Tracer | None):
        self.inp, self.tracer = inp, tracer
        self.p, self.m, self.v = inp.p, inp.m, inp.v
        self.p2p = inp.p2p
        self.env = simpy.Environment()
        self.split_w = inp.schedule == "zb_h1"
        self.stages = [
            _Stage(i, schedule(inp.schedule, self.p, self.m, i, self.v), list(inp.chunk_work[i]),
                   inp.slowdown[i], simpy.Resource(self.env, 1), simpy.Resource(self.env, 1))
            for i in range(self.p)]
        self.arrivals: dict = {}
        self.links = {(i, d): simpy.Resource(self.env, 1) for i in range(self.p) for d in (1, -1)}
        self.dp = list(inp.dp)
        self.gathered: dict = {}

    # -- data movement -------------------------------------------------------------------------
    def _event(self, key):
        if key not in self.arrivals:
            self.arrivals[key] = self.env.event()
        return self.arrivals[key]

    def _send(self, src: int, direction: int, key):
        with self.links[(src, direction)].request() as req:
            yield req
            start = self.env.now
            yield self.env.timeout(self.p2p)
            if self.tracer and self.p2p > 0:
                self.tracer.slice(src, "pp send" if direction > 0 else "pp send (grad)", f"{key[0]}{key[1]}",
                                  start, self.env.now)
        self._event(key).succeed()

    # -- data-parallel stream -----------------------------------------------------------------
    def _dp_job(self, st: _Stage, seconds: float, name: str, done_key=None):
        with st.dp.request() as req:
            yield req
            start = self.env.now
            yield self.env.timeout(seconds)
            st.activity.append((start, self.env.now, 1))
            if self.tracer:
                self.tracer.slice(st.index, "dp comm", name, start, self.env.now)
        st.dp_end = max(st.dp_end, self.env.now)
        if done_key is not None:
            self._event(done_key).succeed()

    def _chunk_buckets(self, c) -> int:
        """DDP buckets of one model chunk: the stage's buckets shared over its chunks."""
        return max(1, -(-c.buckets // self.v))

    def _start_gathers(self, st: _Stage):
        c = self.dp[st.index]
        if c.gather <= 0:
            return
        per_chunk = c.gather / self.v
        k = self._chunk_buckets(c) if self.inp.overlap_gather else 1
        for chunk in range(self.v):
            for b in range(k):
                st.dp_jobs.append(self.env.process(self._dp_job(
                    st, per_chunk / k, f"param all-gather {chunk}.{b}", ("gather", st.index, chunk, b))))
        self.gathered[st.index] = k

    # -- compute stream -----------------------------------------------------------------------
    def _run_task(self, st: _Stage, task: Task, pieces: int, before_piece, after_piece):
        d = _durations(st.chunk_work[task.chunk], task.kind, self.split_w)
        total = sum(d.values()) * st.slowdown
        for k in range(pieces):
            if before_piece:
                t0 = self.env.now
                yield before_piece(k)
                st.wait_gather += self.env.now - t0
            start = self.env.now
            yield self.env.timeout(total / pieces)
            busy = (d["compute"] + d["recompute"]) * st.slowdown / pieces
            st.activity.append((start, start + busy, 2))
            if self.env.now > start + busy:
                st.activity.append((start + busy, self.env.now, 1))
            if self.tracer:
                self._trace_task(st, task, start, d, st.slowdown / pieces)
            if after_piece:
                after_piece(k)
        for cause, sec in d.items():
            st.split[cause] = st.split.get(cause, 0.0) + sec * st.slowdown
        st.busy += total

    def _trace_task(self, st: _Stage, task: Task, start: float, d: dict, factor: float):
        label = f"{task.kind}{task.microbatch}" + (f".{task.chunk}" if self.v > 1 else "")
        t = start
        for cause in ("compute", "recompute", "tp_comm", "cp_comm", "ep_comm"):
            sec = d[cause] * factor
            if sec > 0:
                track = "compute" if cause in ("compute", "recompute") else cause.replace("_", " ")
                self.tracer.slice(st.index, track, label if cause == "compute" else f"{label} {cause}",
                                  t, t + sec)
                t += sec

    def _stage_proc(self, st: _Stage):
        c = self.dp[st.index]
        V = self.p * self.v
        last_b = {}   # chunk -> index of the task that completes its weight gradients
        for idx, t in enumerate(st.tasks):
            if t.kind == ("W" if self.split_w else "B"):
                last_b[t.chunk] = idx
        first_f = {}
        for idx, t in enumerate(st.tasks):
            if t.kind == "F" and t.chunk not in first_f:
                first_f[t.chunk] = idx
        overlap = self.inp.overlap_grad
        grad_per_chunk = c.grad / self.v
        for idx, task in enumerate(st.tasks):
            vs = task.chunk * self.p + st.index
            if task.kind == "F" and vs > 0:
                yield from self._wait(st, self._event(("act", task.microbatch, vs)))
            if task.kind == "B" and vs < V - 1:
                yield from self._wait(st, self._event(("grad", task.microbatch, vs)))
            before = after = None
            pieces = 1
            if task.kind == "F" and first_f.get(task.chunk) == idx and st.index in self.gathered:
                pieces = self.gathered[st.index]
                if self.inp.overlap_gather:
                    before = (lambda k, ch=task.chunk: self._event(("gather", st.index, ch, k)))
                else:   # not overlapped: the step starts once every chunk's parameters are gathered
                    before = (lambda k: self.env.all_of([self._event(("gather", st.index, ch, 0))
                                                         for ch in range(self.v)]))
            if idx == last_b.get(task.chunk) and overlap and grad_per_chunk > 0:
                pieces = self._chunk_buckets(c)
                after = (lambda k, st=st, n=pieces: st.dp_jobs.append(self.env.process(
                    self._dp_job(st, grad_per_chunk / n, f"grad reduce {k}"))))
            yield from self._run_task(st, task, pieces, before, after)
            if task.kind == "F" and vs < V - 1:
                self.env.process(self._send(st.index, 1, ("act", task.microbatch, vs + 1)))
            if task.kind == "B" and vs > 0:
                self.env.process(self._send(st.index, -1, ("grad", task.microbatch, vs - 1)))
        st.compute_end = self.env.now
        if not overlap and grad_per_chunk > 0:
            st.dp_jobs.append(self.env.process(self._dp_job(st, c.grad, "grad reduce")))
        yield self.env.all_of(st.dp_jobs)
        st.dp_end = max(st.dp_end, st.compute_end)
        z3, opt = self.inp.zero3[st.index], self.inp.optimizer[st.index]
        if self.inp.offload:
            z3 += self.inp.offload[st.index]
        start = self.env.now
        yield self.env.timeout(z3 + opt)
        st.activity.append((start, start + z3, 1))
        st.activity.append((start + z3, self.env.now, 2))
        if self.tracer and z3 + opt > 0:
            self.tracer.slice(st.index, "compute", "optimizer step", start + z3, self.env.now)
        st.done = self.env.now
        st.split["zero3"] = z3

    def _wait(self, st: _Stage, event):
        if not event.triggered:
            t0 = self.env.now
            yield event
            st.wait_data += self.env.now - t0

    def run(self) -> list[_Stage]:
        for st in self.stages:
            self._start_gathers(st)
            self.env.process(self._stage_proc(st))
        self.env.run()
        return self.stages


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
        zero3 = [zero3_exposed(s, i, parts[i].total, tiers) for i in range(lay.pp)]
        dp = [replace(c, grad=0.0, gather=0.0) for c in dp]
    elif any(c.per_microbatch for c in dp):   # ZeRO-2: per-microbatch reduce-scatters, closed form too
        par0 = s.workload.parallelism
        zero3 = [grad_exposed(c, parts[i].total, lay.num_microbatches, par0.overlap_grad_reduce)
                 for i, c in enumerate(dp)]
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
    the stage that finishes last, point-to-point cost as the difference to a run without transfer
    time, and the bubble as what remains."""
    tracer = Tracer(inp.p) if trace else None
    stages = _Step(inp, tracer).run()
    step = max(st.done for st in stages)
    last = max(range(len(stages)), key=lambda i: stages[i].done)
    busiest = max(range(len(stages)), key=lambda i: stages[i].busy)
    no_p2p = max(st.done for st in _Step(inp.without_p2p(), None).run()) if inp.p > 1 and inp.p2p > 0 else step
    b, c = stages[busiest], stages[last]
    breakdown = {k: b.split.get(k, 0.0) for k in ("compute", "recompute", "tp_comm", "cp_comm", "ep_comm")}
    breakdown["pp_comm"] = max(0.0, step - no_p2p)
    off = inp.offload[last] if inp.offload else 0.0
    breakdown["dp_comm"] = (c.done - c.compute_end - inp.optimizer[last] - off) + c.wait_gather
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
