"""Energy, power, carbon and money: integrals, invariants and hand cases."""
import numpy as np
import pytest

from simulator import simulate
from simulator.metrics.energy import carbon_kg, cost_by_use, energy_by_use, read_profile
from simulator.metrics.power import PowerModel, power_model_of, stage_levels, step_power

NO_FAILURES = ["cluster.reliability.gpu_failures_per_gpu_hour=0", "cluster.reliability.host_failures_per_node_hour=0",
               "cluster.reliability.network_failures_per_node_hour=0",
               "cluster.reliability.software_failures_per_node_hour=0",
               "cluster.reliability.planned_maintenance_per_node_hour=0",
               "cluster.reliability.straggler_rate_per_node_hour=0"]


def _model(**kw):
    base = dict(tdp=700.0, idle=100.0, node_overhead=2500.0, switches=0.0, pue=1.1, gpus=16, nodes=2)
    return PowerModel(**{**base, **kw})


def test_step_energy_is_the_integral_of_the_power_curve(scenario):
    from simulator.engine.iteration import simulate_step

    s = scenario("llama3-70b", "training.global_batch_size=256")
    it = simulate_step(s)
    sp = step_power(it.activity, it.step_time, power_model_of(s))
    assert sp.energy_j == pytest.approx(float(np.sum(sp.watts * np.diff(sp.times))), rel=1e-12)
    assert sp.times[0] == 0 and sp.times[-1] == pytest.approx(it.step_time)
    assert sp.min_w <= sp.avg_w <= sp.max_w


def test_power_by_state_by_hand():
    m = _model()
    # two stages of 8 GPUs: stage 0 computes for the whole second, stage 1 only for the first half
    sp = step_power(([(0.0, 1.0, 2)], [(0.0, 0.5, 2)]), 1.0, m)
    full, wait = m.gpu_watts(2), m.gpu_watts(0)
    assert full == 700 and wait == pytest.approx(160)
    it_first = 16 * full + 2 * 2500
    it_second = 8 * full + 8 * wait + 2 * 2500
    assert sp.max_w == pytest.approx(1.1 * it_first)
    assert sp.energy_j == pytest.approx(1.1 * (0.5 * it_first + 0.5 * it_second))


def test_stage_levels_prefer_compute_over_communication():
    pts, level = stage_levels([(0.0, 1.0, 1), (0.25, 0.5, 2)], 2.0)
    assert list(pts) == [0.0, 0.25, 0.5, 1.0, 2.0]
    assert list(level) == [1, 2, 1, 0]


def test_campaign_energy_is_the_integral_of_its_power_curve(scenario):
    # one phase: one set of power levels; no stragglers, whose eviction stops the replica charges to
    # "stragglers" (energy prices that cause at the training power; docs/campaign.md, Limitations)
    s = scenario("llama3-405b", "phases=null", "cluster.reliability.straggler_rate_per_node_hour=0")
    r = simulate(s, replicas=1, seed=3, timeline=True)
    p, e = power_model_of(s), r.energy
    level = {"up": e.step_power_w["avg"], "checkpoint": p.facility(p.gpus * p.gpu_watts(0)),
             "down": p.idle_facility(), "restart": p.idle_facility()}
    integral = sum((b - a) * level[st] for a, b, st in r.campaign.timeline)
    assert integral + e.energy_by_use_j["spares"] == pytest.approx(e.energy_j, rel=1e-4)


def test_without_failures_energy_is_steps_times_step_energy_plus_checkpoints(scenario):
    s = scenario("llama3-8b", *NO_FAILURES, "cluster.reliability.spare_nodes=0")
    r = simulate(s, replicas=2)
    e, c = r.energy, r.campaign
    assert c.failures["total"] == 0
    p = power_model_of(s)
    expected = r.train_steps * e.step_energy_j + c.time_lost_s["checkpoint"] * p.facility(p.gpus * p.gpu_watts(0))
    assert e.energy_j == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("factor", [2, 4])
def test_more_failures_never_cost_less(scenario, factor):
    base = simulate(scenario("llama3-405b"), replicas=8).energy
    rate = 1.26e-5 * factor
    worse = simulate(scenario("llama3-405b", f"cluster.reliability.gpu_failures_per_gpu_hour={rate}"), replicas=8).energy
    assert worse.energy_j > base.energy_j and worse.cost_usd > base.cost_usd and worse.co2_kg > base.co2_kg


def test_pue_scales_facility_energy_only(scenario):
    a = simulate(scenario("llama3-8b", "cluster.power.pue=1.1"), replicas=4).to_json()
    b = simulate(scenario("llama3-8b", "cluster.power.pue=1.5"), replicas=4).to_json()
    assert b["it_energy_mwh"] == pytest.approx(a["it_energy_mwh"], rel=1e-12)
    assert b["energy_mwh"] / a["energy_mwh"] == pytest.approx(1.5 / 1.1, rel=1e-12)
    assert b["gpu_hours"] == a["gpu_hours"] and b["time_to_train_days"] == a["time_to_train_days"]


def test_energy_by_use_adds_up():
    uses = energy_by_use(100.0, {"lost_work": 10.0, "restart": 5.0, "checkpoint": 2.0}, 1000.0, 300.0, 100.0, 7.0)
    assert uses["productive"] == 83 * 1000 and uses["lost_work"] == 10_000
    assert uses["restart"] == 500 and uses["checkpoint"] == 600 and uses["spares"] == 700


def test_cloud_and_owned_cost_by_hand():
    hours = 10 * 3600.0
    cloud = cost_by_use("cloud", hours, 8, 0, {"restart": 3600.0}, 3.6e9, 2.0, 0, 1, 0)
    assert sum(cloud.values()) == pytest.approx(8 * 10 * 2.0) and cloud["restart"] == pytest.approx(16.0)
    owned = cost_by_use("owned", hours, 8, 0, {}, 3.6e9, 0, 35040.0, 4 * 8760 * 3600.0, 0.1 / 3.6e6)
    assert owned["productive"] == pytest.approx(8 * 10 * 1.0) and owned["energy"] == pytest.approx(100.0)


def test_carbon_constant_and_hourly_profile(tmp_path):
    kwh = 3.6e6
    assert carbon_kg(1000 * kwh, 7200, 0.4 / kwh) == pytest.approx(400)
    csv = tmp_path / "grid.csv"
    csv.write_text("hour,kg_per_kwh\n0,0.2\n1,0.6\n")
    profile = read_profile(csv)
    assert carbon_kg(1000 * kwh, 2 * 3600, 0.0, profile) == pytest.approx(400)   # mean 0.4 over 2 h
    assert carbon_kg(1000 * kwh, 3 * 3600, 0.0, profile) == pytest.approx(1000 * (0.2 + 0.6 + 0.2) / 3)


def test_profile_from_the_cluster_file(tmp_path, scenario):
    import shutil

    from simulator import load_scenario
    from tests.conftest import TOPOLOGIES, WORKLOADS

    shutil.copy(TOPOLOGIES / "dgx-h100-superpod.yaml", tmp_path / "c.yaml")
    (tmp_path / "grid.csv").write_text("0.1\n0.1\n")
    s = load_scenario(WORKLOADS / "llama3-8b.yaml", cluster=tmp_path / "c.yaml",
                      overrides=["cluster.prices.carbon_intensity_profile=grid.csv"])
    e = simulate(s, replicas=2).energy
    assert e.co2_kg == pytest.approx(e.energy_j / 3.6e6 * 0.1, rel=1e-9)
