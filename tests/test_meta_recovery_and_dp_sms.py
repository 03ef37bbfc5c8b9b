"""Issue 15, fourth pass: a restart overhead that already includes init and load (Kokolis et al.'s
u0), the SMs overlapped ZeRO-2/3 collectives take from compute (``dp_comm_sms``), and the Llama 3
Table 4 rows and the 405B whole run as validation checks."""
from __future__ import annotations

import math

import pytest

from simulator import load_scenario
from simulator.cli import main
from simulator.cost.step import estimate_step, sm_stolen
from simulator.engine.campaign import campaign_params
from simulator.engine.iteration import simulate_step
from tests.conftest import R, WORKLOADS

LLAMA = WORKLOADS / "llama3-405b.yaml"
STEP = 6.4
TOP = ["phases=null"]


def _params(*over):
    return campaign_params(load_scenario(LLAMA, overrides=list(over)), STEP, train_steps=1000)


def test_meta_cluster_restart_is_kokolis_u0_with_init_and_load_inside():
    p = _params()
    init = 2.44e-3 * 16384                      # communicator_init_per_gpu x GPUs = 39.98 s
    assert p.communicator_init_s == pytest.approx(init)
    # 405B x (2 + 12) B at ByteCheckpoint's 44 GB/s: 129 s
    assert p.checkpoint_load_s == pytest.approx(129.1, abs=0.5)
    assert p.restart_s == pytest.approx(300.0)                 # 5 min, init and load inside
    # a whole overhead shorter than the init and load it includes: they are the floor
    short = _params(R + "restart_time=1 min")
    assert short.restart_s == pytest.approx(short.communicator_init_s + short.checkpoint_load_s)
    # the bundled convention: restart_time + init + load
    added = _params(R + "restart_time_includes_init_and_load=false")
    assert added.restart_s == pytest.approx(300.0 + init + added.checkpoint_load_s)


def test_the_superpod_keeps_adding_init_and_load():
    s = load_scenario(LLAMA, overrides=TOP, cluster=WORKLOADS.parent / "topologies" / "dgx-h100-superpod.yaml")
    p = campaign_params(s, STEP, train_steps=1000)
    assert p.restart_s == pytest.approx(900.0 + p.communicator_init_s + p.checkpoint_load_s)


def test_sm_stolen_by_hand():
    assert sm_stolen(1.0, 0.5, 0.25) == pytest.approx(0.5 * 0.25 / 0.75)    # compute-bound part only
    assert sm_stolen(0.2, 0.5, 0.25) == pytest.approx(0.2 / 3)
    assert sm_stolen(0.2, 0.5, 0.0) == 0.0
    assert sm_stolen(-1.0, 0.5, 0.25) == 0.0


def _step(*over, engine="closed"):
    s = load_scenario(LLAMA, overrides=TOP + list(over))
    return estimate_step(s).step_time if engine == "closed" else simulate_step(s).step_time


def test_dp_comm_sms_slows_the_405b_step_monotonically_and_both_engines_agree():
    t = [_step(f"parallelism.dp_comm_sms={k}") for k in (0, 16, 20, 32)]
    assert t == sorted(t) and t[0] < t[-1]
    # by hand at 0 -> 20: 16 microbatches x 0.265 s of reduce-scatter hidden behind 0.303 s of
    # compute, each losing 20/132 of the SMs: +16 x 0.265 x (20/132)/(112/132) = +0.758 s, plus the
    # gathers hidden behind the first forward (at most 0.134 s x 20/112 = 0.024 s) and the busiest
    # stage's own share (stages differ by a layer): within 8 %
    assert t[2] - t[0] == pytest.approx(16 * 0.2654 * 20 / 112, rel=0.08)
    # and the charge grows as share / (1 - share): 32 SMs against 16
    assert (t[3] - t[0]) / (t[1] - t[0]) == pytest.approx((32 / 100) / (16 / 116), rel=0.05)
    des = _step("parallelism.dp_comm_sms=20", engine="des")
    assert des == pytest.approx(t[2], rel=0.02)


def test_a_communication_bound_step_does_not_feel_the_sms():
    # 4K sequences on DP64: the per-microbatch reduce-scatters outlast the compute, so the step is the
    # network's; slower compute beside it changes nothing
    over = ["model.seq_length=4096", "training.global_batch_size=1024", "num_gpus=8192"]
    assert _step(*over, "parallelism.dp_comm_sms=32") == pytest.approx(_step(*over, "parallelism.dp_comm_sms=0"),
                                                                         rel=1e-9)


def test_zero1_reductions_are_not_charged():
    over = ["parallelism.zero_stage=1", "parallelism.reshard_after_forward=true"]
    assert _step(*over, "parallelism.dp_comm_sms=32") == _step(*over, "parallelism.dp_comm_sms=0")


def test_too_many_sms_is_a_clear_error(capsys):
    code = main(["run", str(LLAMA), "--fast", "--set", "parallelism.dp_comm_sms=100"])
    err = capsys.readouterr().err
    assert code == 2 and "parallelism.dp_comm_sms" in err and "100" in err and "Traceback" not in err


def test_table4_rows_are_predicted_not_fitted_and_near_meta():
    from simulator.validation.fit import fit_set, moe_set
    from simulator.validation.runner import cases, load_rows
    rows = [r for r in load_rows() if r["source"] == "llama3-t4"]
    ok, skipped = cases(rows)
    assert not skipped and len(ok) == 3
    assert not fit_set(ok) and not moe_set(ok)
    published = {c.row["run"]: float(c.row["value"]) for c in ok}
    assert sorted(published.values()) == [380.0, 400.0, 430.0]      # Table 4, TFLOPs/GPU
    for c in ok:
        err = c.predict().predicted / published[c.row["run"]] - 1
        assert abs(err) < 0.15, (c.row["run"], err)


def test_the_405b_whole_run_is_within_10_percent_of_meta_with_ettr_above_90():
    from simulator import simulate
    r = simulate(load_scenario(LLAMA), replicas=4, seed=0).to_json()
    assert abs(r["gpu_hours"] / 30.84e6 - 1) < 0.10
    assert r["ettr"] > 0.90 and not math.isnan(r["ettr"])
