"""Golden end-to-end runs of the CLI on the bundled workloads."""
import json
import os
import subprocess
import sys

import pytest

from simulator.cli import main
from tests.conftest import BUNDLED, ROOT, WORKLOADS

GOLDEN = ROOT / "tests" / "golden"
CONTRACT = ["num_parameters", "step_time_s", "tokens_per_s", "mfu", "hfu", "tflops_per_gpu",
            "memory_per_gpu_gib", "fits_in_memory", "num_gpus", "train_steps", "ideal_time_to_train_days",
            "time_to_train_days", "time_to_train_days_p10", "time_to_train_days_p50", "time_to_train_days_p90",
            "ettr", "failures", "checkpoint_interval_s", "gpu_hours", "energy_mwh", "avg_power_mw",
            "peak_power_mw", "co2_tonnes", "cost_usd", "breakdown", "assumptions"]
GOLDEN_KEYS = ["num_parameters", "step_time_s", "mfu", "hfu", "memory_per_gpu_gib", "train_steps",
               "ideal_time_to_train_days", "breakdown", "time_to_train_days_p50", "time_to_train_days_p90",
               "ettr", "failures", "checkpoint_interval_s", "energy_mwh", "peak_power_mw", "co2_tonnes",
               "cost_usd"]


def run_json(capsys, *argv):
    assert main(["run", *argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_summary_of_the_first_contact_workload(capsys):
    assert main(["run", str(WORKLOADS / "llama3-8b.yaml")]) == 0
    out = capsys.readouterr().out
    for text in ("llama3-8b on 512 × H100", "TP2 PP1 DP256", "step time", "MFU", "memory/GPU",
                 "time to train", "where the step goes", "assumptions"):
        assert text in out


@pytest.mark.parametrize("name", BUNDLED)
def test_json_contract(capsys, name):
    data = run_json(capsys, str(WORKLOADS / f"{name}.yaml"))
    for key in CONTRACT:
        assert key in data, key
    assert 0 < data["mfu"] <= data["hfu"] < 1
    assert data["fits_in_memory"] is True
    assert data["step_time_s"] == pytest.approx(sum(data["breakdown"].values()), rel=1e-9)
    ideal = data["ideal_time_to_train_days"]
    assert ideal <= data["time_to_train_days_p10"] <= data["time_to_train_days_p50"] <= data["time_to_train_days_p90"]
    assert 0 < data["ettr"] <= 1 and data["failures"]["total"] >= 0


@pytest.mark.parametrize("name", BUNDLED)
def test_golden(capsys, name):
    """Bit-for-bit regression against tests/golden (regenerate with TRAINSIM_UPDATE_GOLDEN=1)."""
    data = run_json(capsys, str(WORKLOADS / f"{name}.yaml"))
    got = {k: data[k] for k in GOLDEN_KEYS}
    path = GOLDEN / f"run-{name}.json"
    if os.environ.get("TRAINSIM_UPDATE_GOLDEN"):
        path.write_text(json.dumps(got, indent=2, sort_keys=True) + "\n")
    assert got == json.loads(path.read_text())


def test_set_and_gpus_change_the_run(capsys):
    base = run_json(capsys, str(WORKLOADS / "llama3-8b.yaml"))
    more = run_json(capsys, str(WORKLOADS / "llama3-8b.yaml"), "--gpus", "1024")
    assert more["num_gpus"] == 1024 and more["step_time_s"] < base["step_time_s"]
    mb = run_json(capsys, str(WORKLOADS / "llama3-8b.yaml"), "--set", "parallelism.micro_batch_size=2")
    assert mb["micro_batch_size"] == 2
    assert "parallelism.micro_batch_size" not in mb["assumptions"]


def test_module_entry_point_and_json_only_on_stdout():
    proc = subprocess.run([sys.executable, "-m", "simulator", "run", str(WORKLOADS / "llama3-8b.yaml"), "--json"],
                          capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert proc.returncode == 0
    assert json.loads(proc.stdout)["name"] == "llama3-8b"


def test_validate_prints_every_row(capsys):
    assert main(["validate"]) == 0
    out = capsys.readouterr().out
    assert out.count("narayanan2021") >= 22 and out.count("megatron-core-h100") >= 9
    assert "mean absolute error all" in out and "worst" in out
    assert "leave-one-source-out" in out and "not expressible" in out and "nemo-24.07" in out


def test_topology_command(capsys, tmp_path):
    from tests.conftest import TOPOLOGIES

    assert main(["topology", str(TOPOLOGIES / "meta-h100-roce-24k.yaml")]) == 0
    out = capsys.readouterr().out
    assert "24,576 × H100" in out and "6.98:1" in out and "bisection" in out
    assert main(["topology", str(TOPOLOGIES / "dgx-h100-superpod.yaml"), "--json", "--nodes", "4",
                 "--draw", str(tmp_path / "f.png")]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["gpus"] == 32 and data["bisection_method"] == "min_cut"
    assert data["bisection_bandwidth"] == pytest.approx(16 * 50e9)   # 16 NICs of 400 Gb/s cross the cut
    assert (tmp_path / "f.png").stat().st_size > 1000


def test_campaign_through_a_process_pool_gives_the_same_numbers(capsys):
    wl = str(WORKLOADS / "llama3-70b.yaml")
    one = run_json(capsys, wl, "--replicas", "8", "--seed", "7")
    two = run_json(capsys, wl, "--replicas", "8", "--seed", "7", "--workers", "2")
    assert one == two
    other = run_json(capsys, wl, "--replicas", "8", "--seed", "8")
    assert other["time_to_train_days"] != one["time_to_train_days"]
