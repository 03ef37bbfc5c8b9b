"""Campaigns that cannot finish say so, quickly: caps, up-front verdicts, null + reason, no NaN."""
from __future__ import annotations

import json
import math
import re
import time

import pytest

from simulator import load_scenario
from simulator.cli import main
from simulator.engine.campaign import (campaign_params, expected_wall_s, run_campaign,
                                       spare_availability)
from tests.conftest import NO_FAILURES, R, WORKLOADS

DAY = 86400.0
LLAMA = WORKLOADS / "llama3-405b.yaml"
STEP = 10.0
NAN = re.compile(r"\bnan\b", re.IGNORECASE)

# (override, words the verdict must contain): each hung before (issue 16, "unbounded simulation")
HOPELESS = [
    (R + "gpu_failures_per_gpu_hour=1", "exceed recovery"),
    ("checkpoint.storage_bandwidth=1 b/s", "does not finish"),
    ("training.train_tokens=1e20", "failure-free run alone takes"),
    (R + "gpu_failures_per_gpu_hour=1e200", "exceed recovery"),      # a failure gap of ~0
    (R + "straggler_rate_per_node_hour=1000", "straggler evictions"),
    (R + "gpu_failures_per_gpu_hour=1e-4", "exceed the pool"),       # spares can never keep up
]


@pytest.mark.parametrize("override,words", HOPELESS)
def test_hopeless_campaigns_are_decided_up_front(override, words):
    # the spare pool is the dedicated one alone (Meta's cluster has idle nodes beyond the job's)
    s = load_scenario(LLAMA, overrides=[override, R + "idle_nodes_as_spares=false"])
    t0 = time.perf_counter()
    res = run_campaign(s, STEP, replicas=8, seed=0)
    assert time.perf_counter() - t0 < 2.0
    assert not res.finishes and not res.simulated
    assert words in res.time_to_train_reason and res.time_to_train_reason.startswith("does not finish")
    for v in (res.time_to_train_days, res.time_to_train_days_p10, res.time_to_train_days_p50,
              res.time_to_train_days_p90):
        assert v is None
    json.dumps(res.to_json(), allow_nan=False)          # raises on NaN or infinity


def test_slow_network_gives_a_century_of_ideal_time_and_a_verdict(capsys):
    rc = main(["run", str(LLAMA), "--fast", "--replicas", "2", "--set", "cluster.node.nic_bandwidth=1 b/s",
               "--json"])
    assert rc == 0
    text = capsys.readouterr().out
    data = json.loads(text)                              # strict JSON: NaN would not parse back
    assert "NaN" not in text and data["time_to_train_days_p50"] is None
    assert data["time_to_train_reason"].startswith("does not finish")
    assert "cost_usd" not in data                        # no money for a run that never ends


def test_text_summary_says_does_not_finish_and_never_nan(capsys):
    assert main(["run", str(LLAMA), "--fast", "--replicas", "2", "--set",
                 R + "gpu_failures_per_gpu_hour=1"]) == 0
    out = capsys.readouterr().out
    assert "does not finish: failures every" in out and not NAN.search(out)


def test_a_simulated_campaign_stops_at_the_cap_with_a_reason():
    # failures every ~34 min against ~23 min of recovery (5 min detection + a 15 min restart + init
    # and load): ETTR ~0.5, not hopeless by arithmetic (expected wall time under 10x the cap), but no
    # replica finishes within 1.5x its ideal time
    s = load_scenario(LLAMA, overrides=[R + "max_wall_factor=1.5", R + "spare_nodes=1000",
                                        R + "gpu_failures_per_gpu_hour=1e-4", R + "restart_time=15 min",
                                        R + "restart_time_includes_init_and_load=false"])
    p = campaign_params(s, STEP, train_steps=20_000)
    assert p.verdict is None and p.give_up_s == pytest.approx(1.5 * 20_000 * STEP)
    res = run_campaign(s, STEP, replicas=4, seed=1, train_steps=20_000)
    assert res.finished_fraction == 0 and res.time_to_train_days_p50 is None
    assert "the cap" in res.time_to_train_reason
    assert res.wall_days == pytest.approx(1.5 * 20_000 * STEP / DAY)


def test_max_wall_time_sets_the_cap():
    s = load_scenario(LLAMA, overrides=[R + "max_wall_time=30 d"])
    assert campaign_params(s, STEP).give_up_s == 30 * DAY


def test_the_event_limit_ends_a_replica():
    from dataclasses import replace
    from simulator.engine.campaign import run_replicas, summarize
    s = load_scenario(LLAMA, overrides=[R + "spare_nodes=1000"])
    p = replace(campaign_params(s, STEP, train_steps=200_000), max_events=50)
    outs = run_replicas(p, 2, 0)
    assert all(not o.finished and o.stop == "events" for o in outs)
    assert "limit of 50 interruptions" in summarize(p, outs, 0).time_to_train_reason


def test_some_replicas_unfinished_p10_exists_p90_is_null():
    from dataclasses import replace
    from simulator.engine.campaign import summarize
    from simulator.engine.replica import CAUSES, ReplicaOutcome
    s = load_scenario(LLAMA)
    p = campaign_params(s, STEP, train_steps=1000)
    outs = [ReplicaOutcome(w * DAY, 1.0, fin, 0, {k: 0 for k in ("gpu", "hbm", "sdc", "host", "nic",
            "host_maintenance", "network", "software", "planned_maintenance", "straggler", "time_limit")},
            {}, None, "" if fin else "cap") for w, fin in [(1, True), (2, True), (3, True), (9, False)]]
    outs = [replace(o, lost=dict.fromkeys(CAUSES, 0.0)) for o in outs]
    r = summarize(p, outs, 0)
    assert r.time_to_train_days_p10 == pytest.approx(1.3) and r.time_to_train_days_p50 == pytest.approx(2.5)
    assert r.time_to_train_days_p90 is None and r.time_to_train_days is None


def test_expected_wall_time_agrees_with_the_simulation():
    s = load_scenario(LLAMA, overrides=[R + "spare_nodes=1000", R + "planned_maintenance_per_node_hour=0"])
    p = campaign_params(s, STEP, train_steps=100_000)
    res = run_campaign(s, STEP, replicas=16, seed=2, train_steps=100_000)
    assert res.time_to_train_days == pytest.approx(expected_wall_s(p) / DAY, rel=0.03)


def test_spare_availability_is_a_poisson_tail():
    s = load_scenario(LLAMA, overrides=[R + "spare_nodes=0", R + "idle_nodes_as_spares=false"])
    p = campaign_params(s, STEP)
    m = sum(c.rate_per_s for c in p.classes if c.takes_node) * p.repair_s
    assert spare_availability(p) == pytest.approx(math.exp(-m))


def test_size_exits_4_and_names_the_closest_candidate(capsys):
    rc = main(["size", str(WORKLOADS / "llama3-8b.yaml"), "--deadline", "1d", "--fast", "--replicas", "2",
               "--no-progress"])
    out = capsys.readouterr().out
    assert rc == 4 and "closest: 1,024 GPUs" in out and not NAN.search(out)


def test_405b_sizing_curve_cost_rises_with_the_gpu_count():
    """4K to 64K GPUs, the cluster (and its explicit spare pool) grown as `size` grows it: more GPUs
    cost more (lower MFU, more failures per day, lower ETTR) and nobody waits for spares."""
    from simulator import simulate
    from simulator.explore.size import _resize
    # no interleaving (8 microbatches at 32K GPUs): Meta's V8 layout replaced by 7-layer edge stages
    flat = ["parallelism.pipeline_model_parallel_layout=null", "parallelism.decoder_first_pipeline_num_layers=7",
            "parallelism.decoder_last_pipeline_num_layers=7"]
    base = load_scenario(LLAMA, overrides=flat)
    costs = []
    for g in (4096, 8192, 16384, 32768, 65536):
        s = load_scenario(LLAMA, gpus=g, overrides=flat + list(_resize(base, g)))
        r = simulate(s, engine="analytical", replicas=4, check_memory=False)
        c = r.campaign
        assert c.finishes and c.time_lost_s["waiting_for_spares"] < 0.03 * c.wall_days * DAY
        costs.append(r.energy.cost_usd)
    assert costs == sorted(costs)


def test_step_jitter_stretches_every_step_by_the_slowest_replica():
    from simulator.engine.campaign import expected_max_normal
    assert expected_max_normal(1) == 0.0
    assert expected_max_normal(2) == pytest.approx(1 / math.sqrt(math.pi), rel=0.06)   # exact 0.564
    quiet = NO_FAILURES
    s = load_scenario(LLAMA, overrides=quiet + [R + "step_jitter=0.02"])
    res = run_campaign(s, STEP, replicas=1, seed=0, train_steps=1000)
    f = 1 + 0.02 * expected_max_normal(s.layout.dp)
    assert res.time_to_train_days == pytest.approx(1000 * STEP * f / DAY)
    assert res.time_lost_s["stragglers"] == pytest.approx(1000 * STEP * (f - 1))


def test_more_data_parallel_replicas_are_never_faster_under_jitter_and_stragglers():
    """Every step waits for the slowest of the DP replicas: with per-step jitter and stragglers on,
    the same work on more replicas (same step time) never finishes sooner."""
    from simulator.engine.campaign import expected_max_normal
    ns = [1, 2, 3, 8, 64, 1000, 10**6]
    assert [expected_max_normal(n) for n in ns] == sorted(expected_max_normal(n) for n in ns)
    quiet = NO_FAILURES
    noisy = quiet + [R + "step_jitter=0.02", R + "straggler_rate_per_node_hour=1e-4", "phases=null"]
    walls = []
    for gpus in (2048, 4096, 8192, 16384):
        s = load_scenario(LLAMA, overrides=noisy, gpus=gpus)
        p = campaign_params(s, STEP, train_steps=20_000)
        walls.append((p.jitter_slowdown, expected_wall_s(p)))
    assert walls == sorted(walls)


def test_compare_and_sweep_never_print_nan_for_a_campaign_that_does_not_finish(capsys, tmp_path):
    w = str(WORKLOADS / "llama3-8b.yaml")
    hopeless = R + "gpu_failures_per_gpu_hour=0.0001,1"
    assert main(["compare", w, "--vary", hopeless, "--fast", "--replicas", "2", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert not NAN.search(out)
    csv = tmp_path / "s.csv"
    assert main(["sweep", w, "--grid", hopeless, "--fast", "--replicas", "2", "--no-progress",
                 "--out", str(csv)]) == 0
    assert not NAN.search(capsys.readouterr().out) and not NAN.search(csv.read_text())
