"""Speed changes that must not change a number (issue 17): each shortcut against the long way."""
from __future__ import annotations

import dataclasses
import pickle

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from simulator import load_scenario, memo
from simulator.calibration.bands import t_quantile
from simulator.cost.step import estimate_step
from simulator.engine.campaign import campaign_params
from simulator.engine.phases import run_phases
from simulator.engine.replica import Replica, run_replica
from simulator.explore.cases import read_inputs
from simulator.explore.executors import InlineExecutor
from simulator.explore.layouts import Layout, Space, structures
from simulator.explore.ranking import SearchTask, _variant, base_scenario, rank_batch, with_layout
from simulator.model.arch import resolve
from simulator.simulate import stage_memory
from tests.conftest import WORKLOADS

R = "cluster.reliability."
LLAMA = WORKLOADS / "llama3-405b.yaml"
# reliability settings whose replicas take every path of the event loop: spares short and a queue
# for them, fewer replicas, Weibull, stragglers and planned stops, sync checkpoints, zero detection
# and restart (events at one instant), a cap
SETTINGS = {
    "default": [],
    "spares": [R + "spare_nodes=6", R + "idle_nodes_as_spares=false", R + "repair_time=12 h"],
    "fewer": [R + "spare_nodes=4", R + "idle_nodes_as_spares=false", R + "repair_time=10 h",
              R + "continue_on_fewer_replicas=true"],
    "weibull": [R + "weibull_shape=0.7"],
    "stragglers": [R + "straggler_rate_per_node_hour=0.00005", R + "planned_maintenance_per_node_hour=0.0001"],
    "sync": ["checkpoint.strategy=sync", "checkpoint.interval=45 min"],
    "instant": [R + "mean_time_to_detect=0 s", R + "restart_time=0 s"],
    "cap": [R + "max_wall_factor=1.05"],
}


def _outcomes(params, n: int = 3) -> list:
    return [run_replica(params, 5, i, record=(i == 0)) for i in range(n)]


@pytest.mark.parametrize("name", list(SETTINGS))
def test_waits_run_at_once_give_the_outcomes_of_the_event_loop(name, monkeypatch):
    """A wait that ends before every queued event runs at once (engine/replica.py): the same
    outcomes, timelines included, as queueing it and letting the loop pop it."""
    s = load_scenario(LLAMA, overrides=SETTINGS[name] + ["phases=null"])
    p = campaign_params(s, 9.4, horizon_s=20 * 86400.0)
    assert p.verdict is None
    fast = _outcomes(p)
    monkeypatch.setattr(Replica, "chain_waits", False)
    assert _outcomes(p) == fast


def test_phases_through_an_executor_equal_in_process():
    """A run's phases go to the executor together; the outcomes are those of one phase at a time."""
    s = load_scenario(LLAMA)
    params = [campaign_params(ps, 7.0, train_steps=20_000) for _, ps in s.phases]
    names = [n for n, _ in s.phases]
    here, per_here = run_phases(params, names, 5, 3)
    there, per_there = run_phases(params, names, 5, 3, executor=InlineExecutor())
    assert here == there and per_here == per_there


@pytest.mark.parametrize("dof", [3, 7, 20])
def test_t_quantile_from_the_cached_grid_is_the_formula(dof):
    import math

    import numpy as np
    for p in (0.5, 0.6, 0.9, 0.975, 0.1):
        q = p if p >= 0.5 else 1.0 - p
        x = np.linspace(0.0, 60.0, 240_001)
        log_c = math.lgamma((dof + 1) / 2) - math.lgamma(dof / 2) - 0.5 * math.log(dof * math.pi)
        pdf = np.exp(log_c - (dof + 1) / 2 * np.log1p(x * x / dof))
        cdf = 0.5 + np.concatenate(([0.0], np.cumsum((pdf[1:] + pdf[:-1]) / 2 * np.diff(x))))
        ref = float(np.interp(q, cdf, x))
        assert t_quantile(p, dof) == (ref if p >= 0.5 else -ref)


@pytest.fixture(scope="module")
def search_405b():
    inp, _ = read_inputs(LLAMA)
    task = SearchTask(inp, ("phases=null",), 1024, Space())
    base = base_scenario(task)
    shapes = structures(resolve(base.workload.model), base.workload.training.global_batch_size, 1024)
    return task, base, shapes


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_zero_variants_share_stage_times_and_activations(search_405b, data):
    """The search hands a shape's ZeRO variants the stage times of the first (cost/stage.py reads no
    ZeRO setting), and the memory model shares a stage's activations between them: every variant's
    step and memory equal those computed from cold caches."""
    task, base, shapes = search_405b
    st_ = data.draw(st.sampled_from(shapes))
    rec = data.draw(st.sampled_from(("none", "selective", "full")))
    try:
        s0 = with_layout(base, Layout(st_, 0, rec, None), task.gpus)
    except Exception:   # a shape config/layout.py refuses: nothing to compare
        return
    variants = [_variant(s0, z, rec) for z in (0, 1, 2, 3)]
    shared = estimate_step(variants[0]).stages
    warm = [(estimate_step(v, stages=list(shared)), stage_memory(v)) for v in variants]
    for v, (est, mem) in zip(variants, warm):
        memo.clear_all()
        assert estimate_step(v) == est
        assert stage_memory(v) == mem


def test_a_batch_ranks_the_same_with_the_base_scenario_kept(search_405b):
    """Every batch of a search brings its own copy of the task; the base scenario built for the
    first is reused for the next: the same rows as building it afresh."""
    task, _, shapes = search_405b
    items = list(enumerate(shapes[:40:3]))
    first = rank_batch(pickle.loads(pickle.dumps(task)), items)
    again = rank_batch(pickle.loads(pickle.dumps(task)), items)
    memo.clear_all()
    from simulator.explore import ranking
    ranking._BASE.clear()
    cold = rank_batch(dataclasses.replace(task), items)
    assert first == again == cold


def test_band_draws_are_the_quantiles_one_by_one():
    from simulator.calibration.bands import shipped_band
    b = shipped_band()
    for m in (1, 7, 200):
        assert b.draws(m).tolist() == [b.at((j + 0.5) / m) for j in range(m)]
