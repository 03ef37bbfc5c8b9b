"""The search's first pass: every layout shape checked for validity and memory, the ones that fit
timed with the closed form (simulator.cost.step), ~1 ms each, in batches on the executor.

Per shape the ZeRO stages are tried in turn and, for each, recomputation from none to full; the
first recomputation level that fits is kept and the heavier ones are pruned: recomputing more only
adds work (time and energy) once the layout fits. A shape whose lightest variant (highest ZeRO
stage, full recomputation) does not fit is pruned at once.
"""
from __future__ import annotations

import dataclasses
import pickle
from dataclasses import dataclass

from simulator.config.layout import derive_layout, layout_recompute_modules
from simulator.config.scenario import Scenario
from simulator.cost.efficiency import DEFAULT
from simulator.cost.step import estimate_step
from simulator.errors import ConfigError
from simulator.explore.cases import Case, Inputs, scenario_of
from simulator.explore.layouts import Layout, Space, Structure, recompute_resets, reshard_after_forward, zero_stages
from simulator.model.memory import GIB
from simulator.simulate import memory_of

# Parallelism keys the search sets itself; a valid one-GPU layout for reading the base workload
RESET = ("parallelism.tensor_model_parallel_size=1", "parallelism.pipeline_model_parallel_size=1",
         "parallelism.virtual_pipeline_model_parallel_size=null", "parallelism.context_parallel_size=1",
         "parallelism.expert_model_parallel_size=1", "parallelism.data_parallel_size=auto",
         "parallelism.micro_batch_size=1", "parallelism.decoder_first_pipeline_num_layers=null",
         "parallelism.decoder_last_pipeline_num_layers=null", "parallelism.pipeline_schedule=null",
         "parallelism.pipeline_model_parallel_layout=null",
         "parallelism.zero_stage=null", "parallelism.distributed_optimizer=false",
         "parallelism.reshard_after_forward=true", "parallelism.data_parallel_shard_degree=null",
         "parallelism.recompute_method=null", "parallelism.recompute_num_layers=null",
         "parallelism.expert_tensor_parallel_size=null", "parallelism.cpu_offloading=false",
         "parallelism.cpu_offloading_num_layers=0")


@dataclass(frozen=True)
class SearchTask:
    """What a ranking worker needs: the raw inputs, the user's overrides, N and the space."""

    inputs: Inputs
    overrides: tuple[str, ...]
    gpus: int
    space: Space


@dataclass(frozen=True)
class Ranked:
    """A layout that divides and fits, with its closed-form step."""

    layout: Layout
    order: int                   # position in the enumeration (ties are broken by it)
    step_time_s: float
    memory_gib: float
    step_energy_j: float | None  # facility energy of one step (None: no power model)
    bubble_s: float
    exposed_comm_s: float        # TP + CP + EP + PP + DP communication not hidden behind compute


def base_scenario(task: SearchTask) -> Scenario:
    """The workload with the user's overrides on one GPU, parallelism reset (always valid)."""
    return scenario_of(task.inputs, Case("base", overrides=task.overrides + RESET, gpus=1))


def _where(loc) -> str:
    return "search"


def with_layout(base: Scenario, layout: Layout, gpus: int) -> Scenario:
    """``base`` with another layout, without re-reading YAML (ConfigError if it does not divide)."""
    par = base.workload.parallelism.model_copy(update=layout.parallelism())
    w = base.workload.model_copy(update={"parallelism": par, "num_gpus": gpus})
    n, lay = derive_layout(w, base.cluster, base.gpu, _where, _where)
    return dataclasses.replace(base, workload=w, layout=lay, num_gpus=n)


def _variant(s: Scenario, zero: int, recompute: str, own_modules: list | None = None) -> Scenario:
    """The same shape with another ZeRO stage and recomputation (no other derived value changes).
    ``own_modules``: the workload's recompute_modules, which its selective variants keep (as the
    re-simulation's --set texts do: explore/layouts.recompute_resets clears them only elsewhere)."""
    reshard = reshard_after_forward(zero, s.layout.pp)
    mods = own_modules if recompute == "selective" else None
    par = s.workload.parallelism.model_copy(update={
        "zero_stage": zero if zero != 1 else None, "distributed_optimizer": zero == 1,
        "recompute_granularity": recompute, "reshard_after_forward": reshard, **recompute_resets(recompute),
        "recompute_modules": mods})
    w = s.workload.model_copy(update={"parallelism": par})
    return dataclasses.replace(s, workload=w, layout=dataclasses.replace(
        s.layout, zero_stage=zero, recompute=recompute, reshard_after_forward=reshard,
        recompute_modules=layout_recompute_modules(recompute, mods)))


def _power_model(base: Scenario, gpus: int):
    try:
        from simulator.metrics.power import power_model_of
    except ImportError:   # no energy model in this build: rank by time only
        return None
    return power_model_of(dataclasses.replace(base, num_gpus=gpus))


def _step_energy(est, s: Scenario, power) -> float | None:
    if power is None:
        return None
    from simulator.metrics.power import average_step_power

    m = s.layout.num_microbatches
    busy = [(m * (st.compute + st.recompute), m * (st.tp + st.cp + st.ep)) for st in est.stages]
    return average_step_power(busy, est.step_time, power) * est.step_time


def _rank(s: Scenario, layout: Layout, order: int, power, memory_bytes: float | None = None,
          stages: dict | None = None) -> Ranked:
    """``stages``: stage times already computed for this shape, by recomputation (filled in here);
    a shape's ZeRO variants share them (cost/stage.py reads no ZeRO setting)."""
    if stages is None:
        est = estimate_step(s)
    else:
        est = estimate_step(s, DEFAULT, stages.get(s.layout.recompute))
        stages.setdefault(s.layout.recompute, list(est.stages))
    b = est.breakdown
    comm = sum(b.get(k, 0.0) for k in ("tp_comm", "cp_comm", "ep_comm", "pp_comm", "dp_comm"))
    mem = memory_of(s).total if memory_bytes is None else memory_bytes
    return Ranked(layout, order, est.step_time, mem / GIB, _step_energy(est, s, power),
                  b.get("bubble", 0.0), comm)


def rank_structure(base: Scenario, st: Structure, order: int, task: SearchTask,
                   power) -> tuple[int, list[Ranked], tuple | None]:
    """(number of valid layouts of this shape, the fitting ones ranked, why the shape was pruned:
    None, ("layout", message) when config/layout.py refuses it, or ("memory", GiB needed at the
    lightest ZeRO stage and recomputation) when nothing fits)."""
    space, cap = task.space, base.gpu.usable_hbm
    zeros = zero_stages(st, space)
    if not zeros or not space.recompute:
        return 0, [], None
    try:
        s0 = with_layout(base, Layout(st, zeros[0], space.recompute[0], space.schedule), task.gpus)
    except ConfigError as exc:
        return 0, [], ("layout", str(exc))
    valid = len(zeros) * len(space.recompute)
    light = (max(zeros), space.recompute[-1])
    own = base.workload.parallelism.recompute_modules
    lightest = memory_of(_variant(s0, *light, own)).total
    if lightest > cap:
        return valid, [], ("memory", lightest / GIB)
    out, stages = [], {}
    for z in zeros:
        for i, r in enumerate(space.recompute):
            s = _variant(s0, z, r, own)
            need = lightest if (z, r) == light else memory_of(s).total
            if need <= cap:
                out.append(_rank(s, Layout(st, z, r, space.schedule), order * 16 + z * 4 + i, power, need,
                                 stages))
                break
    return valid, out, None


_BASE: dict = {}     # the last task's (base scenario, power model), by the task's pickled bytes


def _base_of(task: SearchTask):
    """(base scenario, power model) of ``task``, built once per task in each process: every batch of
    a search brings its own copy of the same task, and equal bytes are equal inputs."""
    key = pickle.dumps(task)
    hit = _BASE.get(key)
    if hit is None:
        base = base_scenario(task)
        hit = (base, _power_model(base, task.gpus))
        _BASE.clear()
        _BASE[key] = hit
    return hit


def rank_batch(task: SearchTask, items: list[tuple[int, Structure]]) -> list[tuple]:
    """One executor task: (order, valid layouts, ranked fitting layouts, prune reason) per shape."""
    base, power = _base_of(task)
    return [(order, *rank_structure(base, st, order, task, power)) for order, st in items]
