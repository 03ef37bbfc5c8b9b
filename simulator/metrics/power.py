"""Power of the job: GPUs by activity state, node overhead, switches, PUE; per step and over time.

GPU power by state, as fractions between the GPU's idle power and its TDP (documented in
docs/model.md; assumptions checked against one published measurement: a DGX H100 under training
load draws about 76% of its 10.2 kW rating, i.e. ~7.8 kW, which with ~2.5 kW for CPUs, memory,
NICs and fans leaves ~0.94 x TDP per GPU averaged over a step):
- computing (tensor-core bound kernels dominate): at the power limit, TDP;
- communicating (exposed collectives, element-wise work): idle + 0.5 x (TDP - idle);
- waiting inside a step (pipeline bubble, waiting for data): idle + 0.1 x (TDP - idle);
- idle (restart, detection, spare): idle power; down for repair: 0.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

COMPUTE, COMM, WAIT = 1.0, 0.5, 0.1      # share of (TDP - idle) above idle power, per state


@dataclass(frozen=True)
class PowerModel:
    tdp: float                 # W per GPU
    idle: float                # W per GPU
    node_overhead: float       # W per node while powered (CPUs, DRAM, NICs, fans)
    switches: float            # W of the job's share of the fabric's switches
    pue: float
    gpus: int
    nodes: int

    def gpu_watts(self, level: float) -> float:
        """Per-GPU power at an activity level: 2 computing, 1 communicating, 0 waiting."""
        share = {2: COMPUTE, 1: COMM, 0: WAIT}[level]
        return self.idle + share * (self.tdp - self.idle)

    @property
    def fixed_it(self) -> float:
        """IT power that does not depend on GPU activity (nodes and switches), W."""
        return self.nodes * self.node_overhead + self.switches

    def facility(self, gpu_watts_total: float | np.ndarray) -> float | np.ndarray:
        return self.pue * (gpu_watts_total + self.fixed_it)

    def idle_facility(self, gpus: int | None = None) -> float:
        """Facility power with the job's GPUs idle (restart, detection, waiting for spares)."""
        return self.facility((self.gpus if gpus is None else gpus) * self.idle)


def campaign_levels(model: PowerModel, step_avg_w: float) -> dict:
    """Facility watts of each campaign state: training at the step's average, a checkpoint with the
    GPUs at their idle draw in a busy node, down and restart at the idle facility."""
    return {"up": step_avg_w, "checkpoint": model.facility(model.gpus * model.gpu_watts(0)),
            "down": model.idle_facility(), "restart": model.idle_facility()}


def stage_levels(activity, step: float) -> tuple[np.ndarray, np.ndarray]:
    """Breakpoints and the activity level on each segment [t_i, t_i+1) of one stage's step: the
    highest level of the intervals covering it (array operations: interval ends to breakpoint
    indices, +1/-1 at each, a running sum per level)."""
    acts = np.asarray(activity, dtype=float).reshape(-1, 3)
    starts, ends, lv = acts[:, 0], acts[:, 1], acts[:, 2]
    pts = np.unique(np.concatenate(([0.0, step], starts, ends)))
    level = np.zeros(len(pts) - 1)
    keep = ends > starts
    for lvl in (1, 2):
        sel = keep & (lv == lvl)
        if not sel.any():
            continue
        diff = np.zeros(len(pts))
        np.add.at(diff, np.searchsorted(pts, starts[sel]), 1.0)
        np.add.at(diff, np.searchsorted(pts, ends[sel]), -1.0)
        level[np.cumsum(diff)[:-1] > 0] = lvl
    return pts, level


@dataclass(frozen=True)
class StepPower:
    times: np.ndarray          # breakpoints, s
    watts: np.ndarray          # facility power on each segment, W (len(times) - 1)
    energy_j: float            # facility energy of one step
    avg_w: float
    min_w: float
    max_w: float


def step_power(activity: tuple, step: float, model: PowerModel) -> StepPower:
    """Facility power over one step from the DES's per-stage activity (every stage stands for
    gpus / stages identical GPUs: its tensor- and data-parallel peers do the same thing)."""
    per_stage = model.gpus / len(activity)
    stages = [stage_levels(a, step) for a in activity]
    grid = np.unique(np.concatenate([p for p, _ in stages]))
    mids = (grid[:-1] + grid[1:]) / 2
    gpu_w = np.zeros(len(mids))
    watts = np.array([model.gpu_watts(lvl) for lvl in (0, 1, 2)])   # per GPU, by level
    for pts, level in stages:
        idx = np.clip(np.searchsorted(pts, mids, side="right") - 1, 0, len(level) - 1)
        gpu_w += per_stage * watts[level[idx].astype(np.intp)]
    fac = model.facility(gpu_w)
    dt = np.diff(grid)
    energy = float(np.sum(fac * dt))
    return StepPower(grid, fac, energy, energy / step, float(fac.min()), float(fac.max()))


def average_step_power(stage_busy: list[tuple[float, float]], step: float, model: PowerModel) -> float:
    """Facility power of a step from per-stage (computing, communicating) seconds alone (closed-form
    engine), at the same power per state as the DES; the rest of the step is waiting."""
    per_stage = model.gpus / len(stage_busy)
    gpu_w = sum(per_stage * (c * model.gpu_watts(2) + x * model.gpu_watts(1)
                             + max(step - c - x, 0.0) * model.gpu_watts(0)) / step for c, x in stage_busy)
    return float(model.facility(gpu_w))


def _network_switches(cluster, gpu) -> int:
    from simulator.topology.tiers import tier_tuple

    return sum(t.switches for t in tier_tuple(cluster, gpu) if t.kind == "network")


def power_model_of(s) -> PowerModel:
    """The job's PowerModel from its Scenario: its GPUs, its nodes and its share of the switches."""
    import math

    c = s.cluster
    gpn = c.node.gpus_per_node
    switches = _network_switches(c, s.gpu)
    share = s.num_gpus / (c.num_nodes * gpn)
    return PowerModel(tdp=s.gpu.tdp, idle=s.gpu.idle_power, node_overhead=c.power.node_overhead,
                      switches=switches * c.power.switch_power * share, pue=c.power.pue,
                      gpus=s.num_gpus, nodes=math.ceil(s.num_gpus / gpn))
