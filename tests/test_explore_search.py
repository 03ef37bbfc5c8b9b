"""Layout search: enumeration against brute force, every result divides and fits, Pareto fronts."""
from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator import load_scenario, simulate
from simulator.errors import ConfigError, InfeasibleError
from simulator.explore.cases import SimOptions, read_inputs
from simulator.explore.executors import executor_for
from simulator.explore.layouts import Space, layouts, structures
from simulator.explore.pareto import dominates, pareto_front
from simulator.explore.search import SearchSettings, search
from simulator.model.arch import resolve
from simulator.simulate import memory_of
from tests.conftest import TOPOLOGIES, WORKLOADS

ANALYTICAL = SimOptions(engine="analytical", replicas=2, campaign=False)
# A small dense model on 8 GPUs: big enough that ZeRO, recomputation and TP decide what fits
SMALL = """\
name: small
cluster: {cluster}
num_gpus: 8
model: {{num_layers: 8, hidden_size: 8192, ffn_hidden_size: 28672, num_attention_heads: 64,
        num_query_groups: 8, vocab_size: 32000, seq_length: 4096, activation: swiglu,
        normalization: rmsnorm, position_embedding_type: rope, add_bias_linear: false}}
training: {{global_batch_size: 8, train_tokens: 1B}}
"""


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    path = tmp_path_factory.mktemp("small") / "small.yaml"
    path.write_text(SMALL.format(cluster=TOPOLOGIES / "dgx-h100-superpod.yaml"))
    return path


def _overrides(tp, pp, vpp, cp, mb, zero, rec):
    return [f"parallelism.tensor_model_parallel_size={tp}", f"parallelism.pipeline_model_parallel_size={pp}",
            f"parallelism.virtual_pipeline_model_parallel_size={vpp if vpp > 1 else 'null'}",
            f"parallelism.context_parallel_size={cp}", f"parallelism.micro_batch_size={mb}",
            f"parallelism.sequence_parallel={'true' if tp > 1 else 'false'}",
            f"parallelism.zero_stage={zero}", f"parallelism.recompute_granularity={rec}"]


def brute_force(path):
    """Every (TP, PP, VPP, CP, micro batch, ZeRO, recompute) load_scenario accepts on 8 GPUs, and the
    step time of those that fit (analytical engine)."""
    valid, timed = set(), []
    for tp, pp, cp in itertools.product(range(1, 9), repeat=3):
        if 8 % (tp * pp * cp):
            continue   # num_gpus must be a multiple of TP x PP x CP: no need to ask
        for vpp, mb in itertools.product(range(1, 9), range(1, 9)):
            try:
                load_scenario(path, overrides=_overrides(tp, pp, vpp, cp, mb, 1, "none"))
            except ConfigError:
                continue
            for zero, rec in itertools.product(range(4), ("none", "selective", "full")):
                try:
                    s = load_scenario(path, overrides=_overrides(tp, pp, vpp, cp, mb, zero, rec))
                except ConfigError:
                    continue
                valid.add((tp, pp, vpp, cp, mb, zero, rec))
                try:
                    r = simulate(s, engine="analytical", campaign=False)
                except InfeasibleError:
                    continue
                timed.append((r.step_time_s, (tp, pp, vpp, cp, mb, zero, rec)))
    return valid, sorted(timed)


def _key(lay):
    s = lay.structure
    return (s.tp, s.pp, s.vpp, s.cp, s.micro_batch, lay.zero, lay.recompute)


@pytest.fixture(scope="module")
def small_search(small):
    inp, _ = read_inputs(small)
    with executor_for(1) as ex:
        return search(inp, (), SearchSettings(gpus=8, top=3), ex, ANALYTICAL, progress=False)


def test_enumeration_is_every_valid_layout_and_the_best_is_brute_force(small, small_search):
    valid, timed = brute_force(small)
    s = load_scenario(small)
    enumerated = {_key(lay) for lay in layouts(structures(resolve(s.workload.model), 8, 8, Space()))}
    assert enumerated == valid
    assert small_search.layouts == len(valid)
    best_time, best = timed[0]
    row = small_search.rows[small_search.best]
    assert row["step_time_s"] == pytest.approx(best_time, rel=1e-12)
    # the search's winner is one of the brute force's fastest (ties broken by memory, then order)
    assert _key(small_search.best_layout) in {k for t, k in timed if t == pytest.approx(best_time, rel=1e-12)}
    # pruning keeps, for each shape and ZeRO stage, only the lightest recomputation that fits
    fitting = {k for _, k in timed}
    for r in small_search.ranked:
        k = _key(r.layout)
        assert k in fitting
        lighter = ("none", "selective", "full")[:("none", "selective", "full").index(k[-1])]
        assert not any(k[:-1] + (x,) in fitting for x in lighter)


def _assert_divides_and_fits(path, layout, gpus):
    s = load_scenario(path, overrides=list(layout.overrides()), gpus=gpus)
    assert s.num_gpus == gpus
    assert memory_of(s).total <= s.gpu.hbm_capacity


def test_every_small_result_divides_and_fits(small, small_search):
    assert small_search.ranked
    for r in small_search.ranked:
        _assert_divides_and_fits(small, r.layout, 8)
    assert all(row["status"] == "ok" and row["fits_in_memory"] for row in small_search.rows)


def test_llama_search_results_divide_and_fit():
    inp, _ = read_inputs(WORKLOADS / "llama3-8b.yaml")
    with executor_for(1) as ex:
        res = search(inp, (), SearchSettings(gpus=64, top=2), ex, ANALYTICAL, progress=False)
    sample = res.ranked[:: max(1, len(res.ranked) // 60)] + res.shortlist
    for r in sample:
        _assert_divides_and_fits(WORKLOADS / "llama3-8b.yaml", r.layout, 64)
    times = [r.step_time_s for r in res.ranked]
    assert times == sorted(times)
    assert res.best is not None and res.front and res.best in res.front


def test_search_reports_when_nothing_fits(small):
    inp, _ = read_inputs(small)
    with executor_for(1) as ex, pytest.raises(InfeasibleError, match="no layout"):
        search(inp, (), SearchSettings(gpus=8, space=Space(tp=(1,), pp=(1,), cp=(1,), zero=(0,), recompute=("none",))),
               ex, ANALYTICAL, progress=False)


points = st.lists(st.tuples(*[st.integers(0, 6)] * 3), min_size=0, max_size=40)


@settings(max_examples=200, deadline=None)
@given(points)
def test_pareto_front_is_non_dominated_and_covers_the_rest(pts):
    front = pareto_front(pts)
    assert front == sorted(set(front))
    for i in front:
        assert not any(dominates(pts[j], pts[i]) for j in range(len(pts)))
    for j in range(len(pts)):
        if j not in front:
            assert any(dominates(pts[i], pts[j]) or tuple(pts[i]) == tuple(pts[j]) for i in front)
    assert len({tuple(pts[i]) for i in front}) == len(front)


def test_search_is_the_same_on_worker_processes(small, small_search):
    inp, _ = read_inputs(small)
    with executor_for(2) as pool:
        res = search(inp, (), SearchSettings(gpus=8, top=3), pool, ANALYTICAL, progress=False)
    assert res.ranked == small_search.ranked
    assert res.rows == small_search.rows and res.best == small_search.best and res.front == small_search.front


@pytest.mark.parametrize("own", [
    ("parallelism.recompute_granularity=full", "parallelism.recompute_method=uniform"),
    ("parallelism.recompute_granularity=selective_op", "parallelism.recompute_matmuls=every_second"),
    ("parallelism.recompute_granularity=selective", "parallelism.recompute_modules=[layernorm]"),
])
def test_the_workloads_own_recompute_options_do_not_invalidate_the_candidates(small, own):
    """The search sets each candidate's recomputation; options that only go with the workload's own
    (Megatron's recompute_method and recompute_modules, torchtitan's recompute_matmuls) are cleared
    for the others, so the
    re-simulated layouts run instead of coming back invalid (they did: every one, for both)."""
    inp, _ = read_inputs(small, overrides=list(own))
    with executor_for(1) as ex:
        res = search(inp, own, SearchSettings(gpus=8, top=3), ex, ANALYTICAL, progress=False)
    assert res.best is not None
    assert res.rows and all(row["status"] == "ok" for row in res.rows)


def test_a_search_whose_layouts_all_fail_says_why(small_search):
    """When no re-simulated layout runs, the text names the first reason instead of only 'invalid'."""
    import dataclasses

    from simulator.report.study_text import search_text

    rows = [{**row, "status": "invalid", "error": "parallelism.x: some reason (got 1)"} for row in small_search.rows]
    broken = dataclasses.replace(small_search, rows=rows, best=None, front=[])
    text = search_text(broken, "small", "days_p50", "analytical")
    assert "best: none of the re-simulated layouts ran" in text
    assert "first reason (invalid): parallelism.x: some reason (got 1)" in text


def test_the_ranking_keeps_the_workloads_recompute_modules_on_selective_candidates(capsys):
    """DeepSeek-V3's workload recomputes [layernorm, mla_up_proj, moe_act]: its selective candidates
    are ranked with those modules (they were ranked with core_attn alone when the first --recompute
    kind was not selective, so the layout the workload describes did not fit and full recompute won),
    and the ranked memory is the re-simulated one."""
    import json

    from simulator.cli import main
    from tests.conftest import WORKLOADS

    argv = ["search", str(WORKLOADS / "deepseek-v3.yaml"), "--fast", "--no-progress", "--json", "--replicas", "2",
            "--tp", "1", "--pp", "16", "--ep", "64", "--micro-batch", "1", "--zero", "1"]
    assert main(argv) == 0
    best = next(c for c in json.loads(capsys.readouterr().out)["candidates"] if c.get("best"))
    assert best["case"].endswith("recompute=selective")
    assert best["closed_form"]["memory_gib"] == pytest.approx(best["memory_per_gpu_gib"])
