"""`trainsim size`: the smallest GPU count that trains within a deadline (failures included), or the
fastest within a budget, or the smallest meeting both.

Candidate counts are those the workload's layout admits (TP x PP x CP x DP with DP x micro batch
dividing the global batch), or with ``search`` a grid of node multiples where each count gets the
layout the closed-form search ranks first among those every training phase of the workload also fits
(the phases are timed with it: the bound and the simulation cover the whole schedule). The failure-free closed-form time is a lower bound of the
time with failures, so counts whose bound misses the deadline by more than MARGIN are not simulated.
The rest are simulated in increasing order, a round of counts at a time, until one meets the
deadline: no count below the answer is skipped, so the answer is the smallest without assuming
that time falls with the count.
"""
from __future__ import annotations

import math
from concurrent.futures import Executor
from dataclasses import dataclass, field

from simulator.config.scenario import Scenario
from simulator.cost.step import estimate_step
from simulator.errors import ConfigError, InfeasibleError
from simulator.explore.cases import Case, Inputs, SimOptions, Study, scenario_of, time_at
from simulator.explore.layouts import Space, divisors
from simulator.explore.ranking import SearchTask
from simulator.explore.search import rank_all
from simulator.explore.sweep import run_cases
from simulator.model.training import plan
from simulator.progress import progress_bar

MARGIN = 1.25     # the closed form may be this much slower than the step DES before a count is skipped
DAY = 86400.0
ROUND = 4         # counts simulated per round when looking for the smallest that meets a deadline
NO_ANSWER_EXIT = 4    # `trainsim size` exit status when no candidate meets the goal (README)


@dataclass(frozen=True)
class SizeSettings:
    deadline_days: float | None = None
    budget_usd: float | None = None
    confidence: str = "p50"
    max_gpus: int | None = None          # default: 8 x the cluster's GPUs
    counts: tuple[int, ...] | None = None
    search: bool = False
    space: Space = field(default_factory=Space)


@dataclass
class SizeResult:
    settings: SizeSettings
    rows: list[dict]                     # one per candidate count, increasing; simulated ones full
    answer: int | None                   # index into rows
    closest: int | None = None           # no answer: the simulated row nearest to the goal


def layout_counts(s: Scenario, max_gpus: int) -> list[int]:
    """GPU counts the scenario's layout admits, up to ``max_gpus``."""
    lay, gbs = s.layout, s.workload.training.global_batch_size
    mp = lay.tp * lay.pp * lay.cp
    out = []
    for dp in divisors(gbs // lay.micro_batch_size):
        m = gbs // (lay.micro_batch_size * dp)
        if (lay.ep > 1 and (dp * lay.cp) % lay.ep) or (lay.vpp > 1 and m % lay.pp) or mp * dp > max_gpus:
            continue
        out.append(mp * dp)
    return out


def node_grid(gpus_per_node: int, max_gpus: int) -> list[int]:
    """1, 1.5, 2, 3, 4, 6, 8, ... nodes' worth of GPUs (and 1, 2, 4 GPUs), up to ``max_gpus``."""
    out, k = {1, 2, 4} & set(range(1, gpus_per_node)), 1
    while k * gpus_per_node <= max_gpus:
        out.add(k * gpus_per_node)
        if k >= 2 and 3 * k // 2 * gpus_per_node <= max_gpus:
            out.add(3 * k // 2 * gpus_per_node)
        k *= 2
    return sorted(n for n in out if n <= max_gpus)


def _resize(s: Scenario, gpus: int) -> tuple[str, ...]:
    """A bigger build of the same cluster when ``gpus`` exceeds it; an explicit spare pool grows in
    proportion (a spare_fraction pool follows the job by itself)."""
    gpn = s.cluster.node.gpus_per_node
    if gpus <= s.cluster.num_nodes * gpn:
        return ()
    nodes = math.ceil(gpus / gpn)
    out = (f"cluster.num_nodes={nodes}",)
    spares = s.cluster.reliability.spare_nodes
    if spares:
        out += (f"cluster.reliability.spare_nodes={math.ceil(spares * nodes / s.cluster.num_nodes)}",)
    return out


def _bound(inputs: Inputs, overrides: tuple[str, ...], gpus: int, executor: Executor,
           space: Space | None) -> tuple[float | None, tuple[str, ...], str, str]:
    """(closed-form failure-free days, overrides giving the layout, its description, why it does not
    fit in memory or "") at ``gpus``."""
    layout_ov, desc = (), ""
    if space is not None:   # the top level's best layout (ranked alone); its phases keep their keys
        from simulator.explore.search import rank_key, schedule_fits, top_level_only
        try:
            _, _, ranked, _ = rank_all(SearchTask(inputs, tuple(overrides) + top_level_only(inputs), gpus, space),
                                       executor, progress=False)
        except ConfigError:
            return None, (), "", ""
        fits = schedule_fits(inputs, tuple(overrides), gpus) or (lambda r: True)
        best = next((r for r in sorted(ranked, key=lambda r: rank_key(r, "time")) if fits(r)), None)
        if best is None:
            return None, (), "", ""
        layout_ov, desc = best.layout.overrides(), best.layout.describe()
    try:
        s = scenario_of(inputs, Case("bound", overrides=tuple(overrides) + layout_ov, gpus=gpus))
        misfit = _misfit(s) if space is None else ""   # the workload's own layout: a bound it never reaches
        if misfit:
            return None, (), s.layout.describe(), misfit
        if s.phases:                           # the phases' failure-free days, one after another
            days = [_days(ps, estimate_step(ps).step_time) for _, ps in s.phases]
            return (None if None in days else sum(days)), layout_ov, desc or s.layout.describe(), ""
        return _days(s, estimate_step(s).step_time), layout_ov, desc or s.layout.describe(), ""
    except (ConfigError, InfeasibleError):    # a phase the searched layout does not suit
        return None, (), "", ""


def _misfit(s: Scenario) -> str:
    """Why the layout does not fit, when the top level or a training phase needs more memory per GPU
    than the GPU has (the search's layouts are checked when ranked); "" when all fit."""
    from simulator.simulate import memory_of

    for name, ps in ((None, s), *s.phases):
        mem = memory_of(ps)
        if mem.total > ps.gpu.usable_hbm:
            where = f" in training phase '{name}'" if name else ""
            return (f"the layout needs {mem.total / 2**30:.1f} GiB per GPU{where}, of the {ps.gpu.usable_hbm / 2**30:.1f} "
                    "a GPU has (--search re-chooses the layout per count)")
    return ""


def _days(s: Scenario, step_s: float) -> float | None:
    p = plan(s.workload.training, s.workload.model.seq_length)
    return None if p is None else p.steps * step_s / DAY


def _meets(row: dict, st: SizeSettings) -> bool:
    if row.get("status") != "ok":
        return False
    days, cost = time_at(row, st.confidence), row.get("cost_usd")
    if st.deadline_days is not None and (days is None or days > st.deadline_days):
        return False
    if st.budget_usd is not None and (cost is None or cost > st.budget_usd):
        return False
    return True


def size(inputs: Inputs, base: Scenario, overrides: tuple[str, ...], st: SizeSettings, executor: Executor,
         options: SimOptions = SimOptions(), progress: bool = True) -> SizeResult:
    """Evaluate candidate counts as described in the module docstring."""
    if st.deadline_days is None and st.budget_usd is None:
        raise ConfigError("nothing to size for", source="size", expected="--deadline, --budget or both")
    if plan(base.workload.training, base.workload.model.seq_length) is None:
        raise ConfigError("the workload does not say how long to train", source=inputs.workload_source,
                          path="training.train_tokens", expected="train_tokens or train_iters")
    cap = st.max_gpus or 8 * base.cluster.num_nodes * base.cluster.node.gpus_per_node
    counts = sorted(set(st.counts)) if st.counts else (
        node_grid(base.cluster.node.gpus_per_node, cap) if st.search else layout_counts(base, cap))
    if not counts:   # the layout's model-parallel size alone exceeds the cap
        lay = base.layout
        smallest = lay.tp * lay.pp * lay.cp * (lay.ep // math.gcd(lay.ep, lay.cp))   # EP divides DP x CP
        raise ConfigError(f"no GPU count up to {cap:,} suits the workload's layout {lay.describe()} "
                          f"(its model-parallel part alone takes {lay.tp * lay.pp * lay.cp:,} GPUs)",
                          source="--max-gpus" if st.max_gpus else "size",
                          value=cap, expected=f"--max-gpus {smallest:,} or more, or --search for other layouts")
    space = st.space if st.search else None
    rows, cases = [], []
    # the closed form alone takes milliseconds a count; a bar only for the layout search per count
    with progress_bar(len(counts), 0, "ranking layouts per GPU count",
                      enabled=progress and space is not None) as advance:
        for n in counts:
            ov = tuple(overrides) + _resize(base, n)
            days, layout_ov, desc, misfit = _bound(inputs, ov, n, executor, space)
            rows.append({"num_gpus": n, "layout": desc, "closed_form_days": days,
                         "status": "does not fit" if misfit else "not simulated", **({"error": misfit} if misfit else {})})
            cases.append(Case(f"{n} GPUs", (("gpus", str(n)),), overrides=ov + layout_ov, gpus=n))
            advance(1)
    todo = [i for i, r in enumerate(rows) if _worth(r, st, base, MARGIN)]
    _simulate(inputs, rows, cases, todo, st, executor, options, progress)
    ok = [i for i, r in enumerate(rows) if _meets(r, st)]
    if st.deadline_days is not None:
        answer = min(ok, key=lambda i: rows[i]["num_gpus"], default=None)
    else:
        answer = min(ok, key=lambda i: (time_at(rows[i], st.confidence), rows[i]["num_gpus"]), default=None)
    if not any(r["closed_form_days"] is not None for r in rows):
        raise InfeasibleError(f"no candidate GPU count gives {inputs.workload_source} a valid layout "
                              f"(tried {counts[:8]}{'...' if len(counts) > 8 else ''})")
    return SizeResult(st, rows, answer, None if answer is not None else _closest(rows, st))


def _closest(rows: list[dict], st: SizeSettings) -> int | None:
    """The simulated row nearest the goal: the least days over the deadline (budget: the least
    cost over it), relative misses summed when both are set."""
    def miss(r: dict) -> float:
        days, cost = time_at(r, st.confidence), r.get("cost_usd")
        out = 0.0
        if st.deadline_days is not None:
            out += math.inf if days is None else max(0.0, days / st.deadline_days - 1.0)
        if st.budget_usd is not None:
            out += math.inf if cost is None else max(0.0, cost / st.budget_usd - 1.0)
        return out
    done = [i for i, r in enumerate(rows) if r.get("status") == "ok" and math.isfinite(miss(r))]
    if not done and st.deadline_days is not None:      # nothing simulated: the best lower bound
        bound = [i for i, r in enumerate(rows) if r.get("closed_form_days") is not None]
        return min(bound, key=lambda i: (rows[i]["closed_form_days"], rows[i]["num_gpus"]), default=None)
    return min(done, key=lambda i: (miss(rows[i]), rows[i]["num_gpus"]), default=None)


def _worth(row: dict, st: SizeSettings, base: Scenario, margin: float) -> bool:
    """Can this count possibly meet the constraints? (lower bounds from the closed form)"""
    days = row["closed_form_days"]
    if days is None:
        return False
    if st.deadline_days is not None and days > st.deadline_days * margin:
        return False
    prices = base.cluster.prices
    if st.budget_usd is not None and getattr(prices, "model", "cloud") == "cloud":
        floor = row["num_gpus"] * days * 24 * prices.gpu_hour
        return floor <= st.budget_usd * margin
    return True


def _simulate(inputs, rows, cases, todo, st, executor, options, progress) -> None:
    """Full simulations: all of ``todo`` for a budget alone; for a deadline, rounds of ROUND counts
    in increasing order until one meets it, plus one more round for the curve around the answer.
    Rounds have a fixed size, so which counts are simulated does not depend on the executor."""
    study = Study((inputs,), options)
    rounds = [todo] if st.deadline_days is None else [todo[i:i + ROUND] for i in range(0, len(todo), ROUND)]
    met = False
    for chunk in rounds:
        done = run_cases(study, [cases[i] for i in chunk], executor, progress=progress, label="sizing")
        for i, row in zip(chunk, done):
            rows[i] = {**row, "num_gpus": rows[i]["num_gpus"], "closed_form_days": rows[i]["closed_form_days"],
                       "layout": rows[i]["layout"] or row.get("layout")}
        if met:
            break
        met = any(_meets(rows[i], st) for i in chunk)
