"""simulator.api: the notebook entry points, and the example under docs/examples/ runs."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from simulator import ConfigError, api
from simulator.cli import main

ROOT = Path(__file__).resolve().parents[1]
W8 = ROOT / "workloads" / "llama3-8b.yaml"
CLUSTER = ROOT / "topologies" / "dgx-h100-superpod.yaml"


def test_load_from_yaml_or_dicts_gives_the_same_numbers():
    a = api.simulate(api.load(W8, gpus=256), fast=True, replicas=4)
    b = api.simulate(api.load(yaml.safe_load(W8.read_text()), yaml.safe_load(CLUSTER.read_text()), gpus=256),
                     fast=True, replicas=4)
    for key in ("step_time_s", "mfu", "time_to_train_days_p50", "cost_usd", "energy_mwh"):
        assert a[key] == b[key]


def test_simulate_matches_the_command_line(capsys):
    run = api.simulate(api.load(W8, overrides={"parallelism.micro_batch_size": 2}), fast=True, replicas=4)
    assert main(["run", str(W8), "--set", "parallelism.micro_batch_size=2", "--fast", "--replicas", "4",
                 "--json"]) == 0
    cli = json.loads(capsys.readouterr().out)
    assert cli["step_time_s"] == run["step_time_s"] and cli["cost_usd"] == run["cost_usd"]
    json.loads(run.to_json())                               # plain JSON
    assert run.records()[0]["layout"] == run.result.layout


def test_override_returns_a_new_setup_and_bad_keys_are_named():
    s = api.load(W8)
    t = s.override({"parallelism.tensor_model_parallel_size": 4}, gpus=256)
    assert s.layout.startswith("TP2") and t.layout.startswith("TP4") and t.scenario.num_gpus == 256
    with pytest.raises(ConfigError, match="micro_batch_sise"):
        s.override({"parallelism.micro_batch_sise": 2})
    with pytest.raises(ConfigError, match="cluster"):
        api.load(yaml.safe_load(W8.read_text()) | {"cluster": None})


def test_compare_and_sweep_return_plain_records():
    s = api.load(W8, gpus=256)
    rows = api.compare(s, vary={"parallelism.micro_batch_size": [1, 2]}, fast=True, replicas=2)
    assert len(rows) == 2 and all(r["status"] == "ok" for r in rows.records())
    json.dumps(rows.records())
    both = api.compare([s, s.override({"parallelism.micro_batch_size": 1})], fast=True, replicas=2)
    assert [r["case"] for r in both.records()] == ["llama3-8b", "llama3-8b (2)"]
    grid = api.sweep(s, {"num_gpus": [128, 256]}, fast=True, replicas=2)
    days = grid.column("time_to_train_days_p50")
    assert days[0] > days[1]                                # twice the GPUs, fewer days


def test_examples_run():
    for script in sorted((ROOT / "docs" / "examples").glob("*.py")):
        out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300, cwd=ROOT)
        assert out.returncode == 0, f"{script.name}:\n{out.stderr[-3000:]}"
        assert out.stdout.rstrip().endswith("ok")
