"""What a real whole run goes through beyond steps and failures (issue 15, the BLOOM whole run):
evaluation pauses, a scheduler's job time limit, the published energy convention (GPU-h x TDP),
and the bundled BLOOM-176B workload that describes them from the tr11 logs."""
from __future__ import annotations

import math

import pytest

from simulator import load_scenario, simulate
from simulator.engine.campaign import campaign_params, run_campaign
from simulator.engine.campaign_plan import expected_wall_s
from simulator.errors import ConfigError
from tests.conftest import NO_FAILURES, R, WORKLOADS

DAY = 86400.0
STEP, STEPS = 10.0, 1000            # 10,000 s of work


def scenario(*overrides: str):
    return load_scenario(WORKLOADS / "llama3-8b.yaml",
                         overrides=NO_FAILURES + ["checkpoint.interval=auto"] + list(overrides))


# ---- evaluation ---------------------------------------------------------------------------
def test_evaluation_stretches_a_failure_free_run_exactly():
    # one 60 s evaluation every 100 steps of 10 s: 10 evaluations, 600 s, on 10,000 s of work
    s = scenario("training.eval_interval=100", "training.eval_time=60 s")
    c = run_campaign(s, STEP, replicas=2, train_steps=STEPS)
    assert c.checkpoints == 0                       # no failures: `auto` takes none
    assert c.time_lost_s["evaluation"] == pytest.approx(600.0, rel=1e-12)
    assert c.time_to_train_days_p50 * DAY == pytest.approx(10_600.0, rel=1e-12)
    assert c.ettr == pytest.approx(10_000 / 10_600, rel=1e-12)
    assert c.estimated_time_to_train_days * DAY == pytest.approx(10_600.0, rel=1e-9)


def test_no_evaluation_by_default_and_zero_time_is_none():
    base = run_campaign(scenario(), STEP, replicas=2, train_steps=STEPS)
    zero = run_campaign(scenario("training.eval_interval=100"), STEP, replicas=2, train_steps=STEPS)
    assert base.time_lost_s["evaluation"] == 0.0 == zero.time_lost_s["evaluation"]
    assert base.time_to_train_days_p50 == zero.time_to_train_days_p50 == pytest.approx(10_000 / DAY)


def test_evaluation_time_is_accounted_under_failures():
    s = load_scenario(WORKLOADS / "llama3-8b.yaml",
                      overrides=["training.eval_interval=50", "training.eval_time=30 s",
                                 R + "gpu_failures_per_gpu_hour=2e-4"])
    c = run_campaign(s, STEP, replicas=8, train_steps=20 * STEPS)
    assert c.failures["total"] > 1
    for wall, ettr in zip(c.time_to_train_days_samples, c.ettr_samples):
        assert 0 < ettr < 1
    # every wall second is charged once: productive + lost = wall, on the mean replica
    productive = 20 * STEPS * STEP
    assert productive + sum(c.time_lost_s.values()) == pytest.approx(c.wall_days * DAY, rel=1e-9)
    # the evaluations of the work done, kept or redone: at least those of the kept work
    assert c.time_lost_s["evaluation"] >= 20 * STEPS / 50 * 30 * (1 - 1e-12)


# ---- the job time limit -----------------------------------------------------------------
def _time_limited_wall(work: float, limit: float, save: float, restart: float) -> tuple[float, int]:
    """By hand: job 1 trains limit - save; each later job restarts first, so trains
    limit - save - restart; each stop costs save + restart."""
    left, stops, first = work, 0, True
    while True:
        room = limit - save - (0.0 if first else restart)
        if left <= room:
            return work + stops * (save + restart), stops
        left -= room
        stops += 1
        first = False


@pytest.mark.parametrize("limit_h", [0.5, 1.0, 2.9])
def test_time_limit_stops_by_hand(limit_h):
    s = scenario(f"{R}job_time_limit={limit_h} h")
    p = campaign_params(s, STEP, train_steps=STEPS)
    wall, stops = _time_limited_wall(STEPS * STEP, limit_h * 3600.0, p.save_s, p.restart_s)
    c = run_campaign(s, STEP, replicas=2, train_steps=STEPS)
    assert c.planned_interruptions == stops
    assert c.time_lost_s["time_limit"] == pytest.approx(stops * (p.save_s + p.restart_s), rel=1e-12)
    assert c.time_to_train_days_p50 * DAY == pytest.approx(wall, rel=1e-12)


def test_time_limit_estimate_on_a_long_run():
    # the analytic estimate stretches the work by 1 / (1 - (save + restart) / limit): the mean rate,
    # close once a run spans many limits (here ~28 jobs of 10 h)
    s = scenario(f"{R}job_time_limit=10 h")
    p = campaign_params(s, STEP, train_steps=100 * STEPS)
    wall, stops = _time_limited_wall(100 * STEPS * STEP, 36_000.0, p.save_s, p.restart_s)
    assert stops > 20
    assert expected_wall_s(p) == pytest.approx(wall, rel=0.01)


def test_a_failure_restarts_the_job_clock():
    # a limit longer than the run never stops it; failures only add restarts, never a time-limit stop
    s = load_scenario(WORKLOADS / "llama3-8b.yaml",
                      overrides=[R + "job_time_limit=400 d", R + "gpu_failures_per_gpu_hour=1e-4"])
    c = run_campaign(s, STEP, replicas=4, train_steps=100 * STEPS)
    assert c.failures["total"] > 1 and c.time_lost_s["time_limit"] == 0.0


def test_time_limit_too_short_to_train_is_a_verdict():
    s = scenario(f"{R}job_time_limit=5 min")        # restart alone takes 15 min
    c = run_campaign(s, STEP, replicas=2, train_steps=STEPS)
    assert c.time_to_train_days_p50 is None and not c.simulated
    assert "job time limit of 5 min leaves no time to train" in c.time_to_train_reason


@pytest.mark.parametrize("key,value", [("training.eval_interval", "0"), ("training.eval_time", "-1 s"),
                                       (R + "job_time_limit", "0 s"), ("training.eval_intervall", "10")])
def test_bad_values_are_errors_with_their_key(key, value):
    with pytest.raises(ConfigError) as e:
        load_scenario(WORKLOADS / "llama3-8b.yaml", overrides=[f"{key}={value}"])
    assert key.split(".")[-1] in str(e.value)


# ---- energy at TDP, the published convention ----------------------------------------------
def test_tdp_energy_is_gpu_hours_times_tdp():
    s = load_scenario(WORKLOADS / "llama3-8b.yaml", overrides=["training.train_tokens=20B"])
    r = simulate(s, engine="analytical", replicas=2).to_json()
    assert r["gpu_tdp_energy_mwh"] == pytest.approx(r["gpu_hours"] * s.gpu.tdp / 1e6, rel=1e-12)
    assert r["gpu_energy_mwh"] < r["gpu_tdp_energy_mwh"]          # activity-based: below TDP


# ---- the bundled BLOOM-176B whole run ------------------------------------------------------
def test_bloom_describes_the_published_operations():
    s = load_scenario(WORKLOADS / "bloom-176b.yaml")
    rel, t = s.cluster.reliability, s.workload.training
    assert rel.job_time_limit == 100 * 3600.0                          # qos_gpu-gc, --time 100:00:00
    assert rel.gpu_failures_per_gpu_hour == pytest.approx(1 / (168 * 384), rel=0.01)   # ~1 GPU a week
    assert (t.eval_interval, t.eval_time) == (1000, 720.0)               # 29 eval sets, ~12 min
    assert rel.straggler_time_to_detect == pytest.approx(2217 * 111.0, rel=0.01)   # >= 68 h, by hand
    phases = s.workload.phases
    assert [p.num_gpus for p in phases][-1] == 192                       # the 24-node tail
    assert phases[-1].train_tokens == pytest.approx(1.6e9)
    # the published 0.7% of training: 12 min per 1,000 steps of the logged 104.7 s
    assert 720 / (1000 * 104.7) == pytest.approx(0.007, abs=0.0005)


def test_bloom_gpu_hours_count_each_phase_s_own_gpus():
    r = simulate(load_scenario(WORKLOADS / "bloom-176b.yaml"), engine="analytical", replicas=4).to_json()
    per_phase = [p["gpu_hours"] for p in r["phases"]]
    assert sum(per_phase) == pytest.approx(r["gpu_hours"], rel=1e-9)
    tail = r["phases"][-1]
    assert tail["num_gpus"] == 192
    assert r["campaign"]["time_lost_days"]["evaluation"] > 0
    assert r["campaign"]["time_lost_days"]["time_limit"] > 0
    assert math.isfinite(r["gpu_tdp_energy_mwh"])
