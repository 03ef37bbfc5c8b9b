"""`trainsim search`: the best parallel layouts for a workload on N GPUs.

1. Enumerate every layout shape that divides (explore/layouts.py).
2. Rank: check each against config/layout.py and memory, time the fitting ones with the closed
   form, prune heavier recomputation (explore/ranking.py). Runs in batches on the executor.
3. Shortlist the best by the objective's closed-form proxy (step time; step energy for energy and
   carbon) plus the closed-form Pareto front of step time vs step energy.
4. Re-simulate the shortlist with the full engines (step DES + campaign with failures + energy and
   cost) and rank by the objective: time to train at a confidence, cost, energy or carbon.
   A workload's training phases are ranked out (the top level alone) but re-simulated in: the
   objective covers the whole schedule, and a shortlisted layout its phases cannot run is refused.
"""
from __future__ import annotations

from concurrent.futures import Executor
from dataclasses import dataclass, field

from simulator.config.layout import ep_misfit, tp_misfit
from simulator.errors import ConfigError, InfeasibleError
from simulator.explore.cases import Case, Inputs, SimOptions, Study, scenario_of, time_at
from simulator.explore.executors import batch_size, map_ordered, timed, worker_count
from simulator.explore.layouts import Layout, Space, divisors, split_refusal, structures
from simulator.explore.pareto import pareto_front
from simulator.explore.progress import progress_bar
from simulator.explore.ranking import Ranked, SearchTask, base_scenario, rank_batch
from simulator.explore.sweep import run_cases
from simulator.model.arch import resolve
from simulator.model.training import plan

OBJECTIVES = ("time", "cost", "energy", "carbon")
OBJECTIVE_KEYS = {"cost": "cost_usd", "energy": "energy_mwh", "carbon": "co2_tonnes"}
FRONT_KEYS = ("time", "cost_usd", "energy_mwh")     # the Pareto front: time vs cost vs energy
# layouts a phased workload's schedule check looks at, best first (~5 ms each): beyond them a search
# whose phases fit none reports so within ~25 s instead of checking every ranked layout (the phased
# Llama 3 8B of tests/test_explore_cli.py finds its first at the 556th)
SCHEDULE_CHECKS = 5000
_MIX = 97        # batches take every 97th shape, so each batch mixes cheap and costly shapes


@dataclass(frozen=True)
class SearchSettings:
    gpus: int
    objective: str = "time"
    confidence: str = "p50"
    top: int = 5                       # layouts re-simulated with the full engines (plus the front)
    space: Space = field(default_factory=Space)


@dataclass
class SearchResult:
    settings: SearchSettings
    shapes: int                        # layout shapes that divide
    layouts: int                       # valid layouts (shapes x ZeRO x recomputation)
    ranked: list[Ranked]               # every fitting layout kept, best closed-form proxy first
    shortlist: list[Ranked]            # those re-simulated, in the order of ``rows``
    rows: list[dict]                   # full simulations
    best: int | None                   # index into rows
    front: list[int]                   # indices into rows: non-dominated on time, cost, energy
    leaders: list[Ranked] = field(default_factory=list)   # the 10 best by proxy, twins shown once
    pruned: dict = field(default_factory=dict)   # why shapes were dropped (see prune_summary)

    @property
    def best_layout(self) -> Layout | None:
        return None if self.best is None else self.shortlist[self.best].layout


def proxy(r: Ranked, objective: str) -> float:
    """Closed-form stand-in for an objective at a fixed GPU count: GPU-hours (time, cost) grow
    with the step time; energy and carbon with the step's energy."""
    if objective in ("energy", "carbon") and r.step_energy_j is not None:
        return r.step_energy_j
    return r.step_time_s


def rank_key(r: Ranked, objective: str) -> tuple:
    """Closed-form order: the proxy, then less memory (more headroom), then enumeration order."""
    return (proxy(r, objective), r.memory_gib, r.order)


def objective_value(row: dict, objective: str, confidence: str) -> float | None:
    if objective == "time":
        return time_at(row, confidence)
    value = row.get(OBJECTIVE_KEYS[objective])
    return None if value in (None, "") else float(value)


def front_point(row: dict, confidence: str) -> tuple[float, ...]:
    """(days at the confidence, cost, energy) with the keys this build reports."""
    values = [time_at(row, confidence)] + [row.get(k) for k in FRONT_KEYS[1:]]
    return tuple(float(v) for v in values if v not in (None, ""))


def _shuffled(shapes: list) -> list[tuple[int, object]]:
    return sorted(enumerate(shapes), key=lambda p: (p[0] % _MIX, p[0]))


def rank_all(task: SearchTask, executor: Executor, progress: bool = True) -> tuple[int, int, list[Ranked], dict]:
    """(shapes, valid layouts, fitting layouts ranked, prune summary) over the whole space."""
    base = base_scenario(task)
    a = resolve(base.workload.model)
    shapes = structures(a, base.workload.training.global_batch_size, task.gpus, task.space)
    items = _shuffled(shapes)
    out: list[tuple] = []
    with progress_bar(len(items), 0, "ranking layouts", enabled=progress) as advance:
        head = items[:32]
        if head:
            first, seconds = timed(rank_batch, task, head)
            out += first
            advance(len(head))
            size = batch_size(seconds / len(head), len(items) - len(head), 4 * worker_count(executor))
            out += list(map_ordered(executor, rank_batch, task, items[len(head):], size, advance))
    valid = sum(o[1] for o in out)
    ranked = [r for o in out for r in o[2]]
    pruned = prune_summary([o[3] for o in out])
    splits = pipeline_refusals(a.num_layers, task.gpus, task.space)
    if splits:
        pruned["pipeline_splits"] = splits
    return len(shapes), valid, ranked, pruned


def pipeline_refusals(num_layers: int, gpus: int, space) -> list[str]:
    """Why each pipeline size the GPU count allows (and --pp keeps) has no stage split."""
    return [why for pp in divisors(gpus) if space.allows("pp", pp)
            for why in [split_refusal(num_layers, pp)] if why]


def prune_summary(reasons: list) -> dict:
    """Counts of pruned shapes by reason, with the first refusal message and the smallest memory
    any memory-pruned shape needed at its lightest setting (ZeRO-3, heaviest recomputation)."""
    layout = [r[1] for r in reasons if r and r[0] == "layout"]
    memory = [r[1] for r in reasons if r and r[0] == "memory"]
    out: dict = {"layout_checks": len(layout), "memory": len(memory)}
    if layout:
        out["first_layout_refusal"] = layout[0]
    if memory:
        out["closest_memory_gib"] = min(memory)
    return out


def _signature(r: Ranked) -> tuple:
    return (f"{r.step_time_s:.9g}", f"{r.step_energy_j or 0.0:.9g}")


def distinct(rs, seen: set) -> list[Ranked]:
    """Skip layouts whose closed-form step time and energy equal one already chosen (e.g. CP x2 with
    micro batch x2, or ZeRO-2 vs ZeRO-1 without pipelining); the first, which needs the least
    memory among equals, is kept."""
    out = []
    for r in rs:
        if _signature(r) not in seen:
            seen.add(_signature(r))
            out.append(r)
    return out


def shortlist(ranked: list[Ranked], objective: str, top: int, keep=None) -> list[Ranked]:
    """The ``top`` best by the objective's proxy, then up to ``top`` more spread along the
    closed-form front of step time vs step energy; closed-form twins are kept once. ``keep``
    (a predicate, asked only of the layouts considered, best first) drops ones that cannot run."""
    keep = keep or (lambda r: True)
    seen: set = set()
    best = []
    for r in distinct(sorted(ranked, key=lambda r: rank_key(r, objective)), seen):
        if len(best) == top:
            break
        if keep(r):
            best.append(r)
    seen = {_signature(r) for r in best}
    if ranked and all(r.step_energy_j is not None for r in ranked):
        pts = [(r.step_time_s, r.step_energy_j) for r in ranked]
        front = sorted((ranked[i] for i in pareto_front(pts)), key=lambda r: (r.step_time_s, r.order))
        front = [r for r in front if _signature(r) in seen or keep(r)]
        if len(front) > top:
            front = [front[round(i * (len(front) - 1) / max(top - 1, 1))] for i in range(top)]
        best += distinct(front, seen)
    return best


def _check_task(task: SearchTask) -> None:
    """Before any work: the workload has a training length (the objectives are the whole run's) and
    the cluster has the GPUs."""
    base = base_scenario(task)
    if plan(base.workload.training, base.workload.model.seq_length) is None:
        raise ConfigError("the workload does not say how long to train (the search compares layouts by the "
                          "whole run's time, cost and energy)", source=task.inputs.workload_source,
                          path="training.train_tokens", expected="training.train_tokens or training.train_iters")
    capacity = base.cluster.num_nodes * base.cluster.node.gpus_per_node
    if task.gpus > capacity:
        raise ConfigError(f"the cluster has {capacity} GPUs", source="--gpus", value=task.gpus,
                          expected=f"at most {capacity}, or a bigger cluster (--set cluster.num_nodes=...)")
    _check_space(task.space, base, task.gpus)


def _check_space(space, base, gpus: int) -> None:
    """Restrictions of the search space that no layout of this model on ``gpus`` GPUs can meet are
    malformed flags (exit 2), not an infeasible search."""
    m = base.workload.model

    def bad(flag: str, values, why: str, expected: str) -> None:
        raise ConfigError(why, source=flag, value=",".join(map(str, values)), expected=expected)

    for flag, values in (("--tp", space.tp), ("--pp", space.pp), ("--cp", space.cp), ("--ep", space.ep)):
        over = [v for v in values or () if v > gpus]
        if over:
            bad(flag, over, f"exceeds the {gpus:,} GPUs searched", f"values up to {gpus:,}")
    a = resolve(m)
    off = [v for v in space.tp or () if tp_misfit(a, v)]   # the layout checks' own rules
    if off:
        bad("--tp", off, f"does not divide the attention heads ({a.heads}) and query groups ({a.query_groups})",
            "divisors of both, e.g. 1,2,4,8")
    why = {v: ep_misfit(a, v) for v in space.ep or ()}
    if "dense" in why.values():
        bad("--ep", space.ep, "expert parallelism needs an MoE model (model.moe)", "--ep 1, or no --ep")
    off = [v for v, w in why.items() if w == "experts"]
    if off:
        bad("--ep", off, f"does not divide the {a.num_experts} experts", "divisors of model.moe.num_experts")
    if space.pp and any(v > m.num_layers for v in space.pp):
        bad("--pp", [v for v in space.pp if v > m.num_layers], f"exceeds num_layers={m.num_layers} (each stage needs a layer)",
            f"values up to {m.num_layers}")
    if space.vpp and any(v > m.num_layers for v in space.vpp):
        bad("--vpp", [v for v in space.vpp if v > m.num_layers], f"exceeds num_layers={m.num_layers} (each virtual stage needs a layer)",
            f"values up to {m.num_layers}")
    gbs = base.workload.training.global_batch_size
    if space.micro_batch and any(v > gbs for v in space.micro_batch):
        bad("--micro-batch", [v for v in space.micro_batch if v > gbs], f"exceeds the global batch of {gbs:,} sequences",
            f"micro batch sizes up to {gbs:,} (a divisor of the batch per data-parallel rank)")


def top_level_only(inputs: Inputs) -> tuple[str, ...]:
    """A layout search explores the top level's layout on N GPUs: the closed-form ranking runs the
    top level alone. The re-simulation keeps the workload's training phases (each with the keys it
    sets, the searched layout for the rest), so the objective prices the whole schedule and a
    written best file runs as simulated."""
    return ("phases=null",) if inputs.wraw.get("phases") else ()


def schedule_fits(inputs: Inputs, overrides: tuple[str, ...], gpus: int):
    """A predicate on ranked layouts: every training phase of the workload builds and fits in memory
    with the layout (each phase with the keys it sets); None without phases. It answers no after
    SCHEDULE_CHECKS layouts."""
    if not inputs.wraw.get("phases"):
        return None
    from simulator.simulate import memory_of

    asked = 0

    def fits(r: Ranked) -> bool:
        nonlocal asked
        asked += 1
        if asked > SCHEDULE_CHECKS:   # the best this many layouts by the closed form: enough to look at
            return False
        try:
            s = scenario_of(inputs, Case("schedule", overrides=tuple(overrides) + r.layout.overrides(), gpus=gpus))
        except (ConfigError, InfeasibleError):
            return False
        return all(memory_of(ps).total <= ps.gpu.usable_hbm for _, ps in s.phases)
    return fits


def search(inputs: Inputs, overrides: tuple[str, ...], settings: SearchSettings, executor: Executor,
           options: SimOptions = SimOptions(), progress: bool = True) -> SearchResult:
    """Enumerate, rank, shortlist and re-simulate (see the module docstring)."""
    if settings.objective not in OBJECTIVES:
        raise ConfigError("unknown objective", source="--objective", value=settings.objective,
                          expected=" | ".join(OBJECTIVES))
    task = SearchTask(inputs, tuple(overrides) + top_level_only(inputs), settings.gpus, settings.space)
    _check_task(task)
    shapes, valid, ranked, pruned = rank_all(task, executor, progress)
    ranked.sort(key=lambda r: rank_key(r, settings.objective))
    if not ranked:
        why = ""
        if pruned.get("memory"):
            why += (f"; {pruned['memory']} shapes do not fit even with ZeRO-3 and the heaviest "
                    f"recomputation (closest needs {pruned['closest_memory_gib']:.1f} GiB)")
        if pruned.get("layout_checks"):
            why += f"; {pruned['layout_checks']} refused by the layout checks (first: {pruned['first_layout_refusal']})"
        if pruned.get("pipeline_splits"):
            why += "; no stage split: " + "; ".join(pruned["pipeline_splits"][:3])
        raise InfeasibleError(f"no layout of {inputs.workload_source} on {settings.gpus} GPUs both divides and "
                              f"fits in memory ({shapes} shapes, {valid} layouts tried{why}). Try more GPUs, "
                              "a smaller global batch or sequence, or a GPU with more memory.")
    short = shortlist(ranked, settings.objective, settings.top, schedule_fits(inputs, overrides, settings.gpus))
    if not short:
        raise InfeasibleError(f"{len(ranked)} layouts of {inputs.workload_source} fit the top level on "
                              f"{settings.gpus} GPUs, but with none of them do all its training phases fit "
                              "in memory (each phase keeps the keys it sets and takes the searched layout "
                              "for the rest). Set the phases' own parallelism, or search with --set phases=null "
                              "for the top level alone.")
    cases = [Case(r.layout.describe(), (("search_layout", r.layout.describe()),),
                  overrides=tuple(overrides) + r.layout.overrides(), gpus=settings.gpus) for r in short]
    rows = run_cases(Study((inputs,), options), cases, executor, progress=progress, label="re-simulating")
    ok = [i for i, row in enumerate(rows) if row["status"] == "ok"
          and objective_value(row, settings.objective, settings.confidence) is not None]
    best = min(ok, key=lambda i: (objective_value(rows[i], settings.objective, settings.confidence),
                                  time_at(rows[i], settings.confidence), short[i].memory_gib, short[i].order),
               default=None)
    points = [front_point(rows[i], settings.confidence) for i in ok]
    front = [ok[j] for j in pareto_front(points)] if points and len({len(p) for p in points}) == 1 else []
    leaders = distinct(ranked[:1000], set())[:10]
    return SearchResult(settings, shapes, valid, ranked, short, rows, best, front, leaders, pruned)

