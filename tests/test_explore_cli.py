"""Golden end-to-end runs of compare, sweep, search, size and sensitivity (regenerate the files in
tests/golden with TRAINSIM_UPDATE_GOLDEN=1), plus their charts, files and input errors."""
from __future__ import annotations

import json
import os

import pytest

from simulator import load_scenario, simulate
from simulator.cli import main
from simulator.cost.efficiency import DEFAULT
from simulator.explore.results import read_rows
from tests.conftest import ROOT, WORKLOADS

GOLDEN = ROOT / "tests" / "golden"
W8 = str(WORKLOADS / "llama3-8b.yaml")
QUICK = ["--fast", "--replicas", "4", "--workers", "1", "--no-progress"]
PNG = b"\x89PNG"
UNDER_A_FILE = ROOT / "tests" / "conftest.py"     # a "folder" that is a file: nothing can be created in it


def run(capsys, *argv, code: int = 0):
    assert main(list(argv)) == code
    return capsys.readouterr()


def run_json(capsys, *argv):
    return json.loads(run(capsys, *argv, "--json").out)


def golden(name: str, got) -> None:
    path = GOLDEN / f"explore-{name}.json"
    if os.environ.get("TRAINSIM_UPDATE_GOLDEN"):
        path.write_text(json.dumps(got, indent=2, sort_keys=True) + "\n")
    assert got == json.loads(path.read_text())


def pick(row: dict, *keys) -> dict:
    return {k: row.get(k) for k in keys}


def test_compare_vary(capsys, tmp_path):
    rows = run_json(capsys, "compare", W8, "--vary", "cluster.node.nic_bandwidth=200 Gb/s,400 Gb/s", *QUICK,
                    "--plot", str(tmp_path / "c.png"))
    golden("compare", [pick(r, "case", "layout", "step_time_s", "time_to_train_days_p50", "cost_usd") for r in rows])
    assert rows[0]["step_time_s"] > rows[1]["step_time_s"]       # slower NICs, slower step
    assert rows[0]["breakdown_dp_comm_s"] > rows[1]["breakdown_dp_comm_s"]
    assert (tmp_path / "c.png").read_bytes()[:4] == PNG
    out = run(capsys, "compare", W8, "--vary", "cluster.reliability.gpu_failures_per_gpu_hour=x1,x4", *QUICK).out
    for text in ("case", "P50 d", "gpu_failures_per_gpu_hour=x4", "where the step goes", "lost work d"):
        assert text in out


def test_compare_workloads_equals_run(capsys):
    rows = run_json(capsys, "compare", W8, str(WORKLOADS / "mixtral-8x7b.yaml"), *QUICK)
    assert [r["case"] for r in rows] == ["llama3-8b", "mixtral-8x7b"]
    direct = simulate(load_scenario(W8), engine="analytical", replicas=4).to_json()
    for key in ("step_time_s", "time_to_train_days_p90", "energy_mwh", "cost_usd"):
        assert rows[0][key] == direct.get(key)


def test_sweep_writes_and_resumes(capsys, tmp_path):
    out = tmp_path / "s.csv"
    argv = ["sweep", W8, "--grid", "num_gpus=256,512", "--grid", "parallelism.micro_batch_size=1,2,4",
            "--out", str(out), *QUICK]
    rows = run_json(capsys, *argv)
    golden("sweep", [pick(r, "case", "status", "step_time_s", "memory_per_gpu_gib") for r in rows])
    assert [r["case"] for r in read_rows(out)] == [r["case"] for r in rows]
    # every number in the file reads back as a number (NumPy floats once wrote 'np.float64(...)')
    assert b"np." not in out.read_bytes()
    back = read_rows(out)
    assert all(float(r["cost_usd_p90"]) > float(r["cost_usd_p10"]) > 0 for r in back if r["status"] == "ok")
    assert "exists" in run(capsys, *argv, code=2).err
    full = out.read_bytes()
    out.write_bytes(full[: full.index(b"\n", len(full) // 2) + 1])   # as if stopped half way
    run(capsys, *argv, "--resume")
    assert out.read_bytes() == full
    run(capsys, *argv, "--force")
    assert out.read_bytes() == full


def test_search_writes_a_runnable_best(capsys, tmp_path):
    best = tmp_path / "best.yaml"
    data = run_json(capsys, "search", W8, "--gpus", "32", "--top", "2", *QUICK, "--write", str(best),
                    "--plot", str(tmp_path / "p.png"))
    golden("search", {**pick(data, "shapes", "layouts", "fitting", "front"), "best": data["best"]["case"],
                      "candidates": [pick(c, "case", "step_time_s") for c in data["candidates"]]})
    assert (tmp_path / "p.png").read_bytes()[:4] == PNG
    ran = run_json(capsys, "run", str(best), "--fast", "--replicas", "4")
    assert ran["num_gpus"] == 32
    assert ran["step_time_s"] == data["best"]["step_time_s"]
    assert ran["time_to_train_days_p50"] == data["best"]["time_to_train_days_p50"]
    text = run(capsys, "search", W8, "--gpus", "32", "--top", "2", *QUICK, "--objective", "energy").out
    for part in ("best by the closed form", "re-simulated", "best: "):
        assert part in text


def test_size_deadline(capsys, tmp_path):
    data = run_json(capsys, "size", W8, "--deadline", "30d", *QUICK, "--plot", str(tmp_path / "z.png"))
    golden("size", {"answer": pick(data["answer"], "num_gpus", "layout", "time_to_train_days_p50"),
                    "rows": [pick(r, "num_gpus", "status") for r in data["rows"]]})
    answer = data["answer"]["num_gpus"]
    assert data["answer"]["time_to_train_days_p50"] <= 30
    # every smaller count either cannot make it (closed-form bound) or was simulated and missed it
    for r in data["rows"]:
        if r["num_gpus"] < answer:
            assert (r["status"] == "does not fit" or r["closed_form_days"] > 30
                    or (r["status"] == "ok" and r["time_to_train_days_p50"] > 30))
    assert (tmp_path / "z.png").read_bytes()[:4] == PNG
    cheap = run_json(capsys, "size", W8, "--budget", "$1.3M", *QUICK)
    assert cheap["answer"]["cost_usd"] <= 1.3e6
    # at the prediction band's P90 the model's own error counts: a deadline the central answer meets
    # but its band's P90 misses is met at p90 (the failure simulation) and missed at band-p90
    mid = (data["answer"]["time_to_train_days_p90"] + data["answer"]["time_to_train_days_band_p90"]) / 2
    one = ["--deadline", f"{mid}d", "--counts", str(answer), *QUICK]
    assert run_json(capsys, "size", W8, *one, "--confidence", "p90")["answer"]["num_gpus"] == answer
    run(capsys, "size", W8, *one, "--confidence", "band-p90", code=4)
    safe = run_json(capsys, "size", W8, "--deadline", "30d", "--confidence", "band-p90", *QUICK,
                    "--plot", str(tmp_path / "b.png"))["answer"]
    assert safe["time_to_train_days_band_p90"] <= 30
    text = run(capsys, "size", W8, "--deadline", "30d", "--confidence", "band-p90", *QUICK).out
    assert "meets the goal at band-p90" in text


def test_sensitivity_tornado(capsys, tmp_path):
    data = run_json(capsys, "sensitivity", W8, "--inputs", "nic,gemm,failures,gpu_price", *QUICK,
                    "--plot", str(tmp_path / "t.png"))
    golden("sensitivity", [pick(i, "name", "low_value", "high_value", "time_delta_days", "cost_delta_usd")
                           for i in data["inputs"]])
    by = {i["name"]: i for i in data["inputs"]}
    assert by["gemm"]["time_delta_days"][0] > 0 > by["gemm"]["time_delta_days"][1]
    assert by["gpu_price"]["time_delta_days"] == [0.0, 0.0]
    assert by["gpu_price"]["cost_delta_usd"][0] < 0 < by["gpu_price"]["cost_delta_usd"][1]
    assert by["failures"]["time_delta_days"][1] > 0
    assert by["gemm"]["high_value"] == "1 (bound)"      # +20 % of the fitted 0.85 is cut at 1, and says so
    assert (tmp_path / "t.png").read_bytes()[:4] == PNG


@pytest.mark.parametrize("argv, code, text", [
    (["compare", W8], 2, "nothing to compare"),
    (["compare", W8, "--vary", "parallelism.tensor_model_paralel_size=1,2"], 2,
     "unknown key (did you mean tensor_model_parallel_size?)"),
    # no case runs (TP1 does not fit, TP3 is invalid): the table is printed, the exit code is 3
    (["compare", W8, "--vary", "parallelism.tensor_model_parallel_size=1,3"], 3, "not simulated"),
    (["compare", W8, "--vary", "parallelism.tensor_model_parallel_size=3,5"], 2, "no case ran (status: invalid)"),
    (["sweep", W8, "--grid", "cluster.gpu=a100-40gb"], 3, "no case ran (status: infeasible)"),
    (["sweep", W8, "--grid", "cluster.nodes.nic_bandwidth=x2"], 2, "unknown key"),
    (["compare", W8, "--vary", "num_gpus"], 2, "--vary"),
    (["sweep", W8, "--grid", "num_gpus=256", "--resume"], 2, "--out"),
    (["sweep", W8, "--grid", "num_gpus=256", "--out", "x.txt"], 2, ".csv or .json"),
    (["search", W8, "--gpus", "8", "--tp", "1", "--pp", "1", "--cp", "1", "--zero", "0",
      "--recompute", "none"], 3, "no layout"),
    (["search", W8, "--gpus", "100000"], 2, "cluster has"),
    (["search", W8, "--tp", "a"], 2, "integers"),
    (["size", W8], 2, "--deadline"),
    (["size", W8, "--deadline", "soon"], 2, "--deadline"),
    (["sensitivity", W8, "--inputs", "nic,typo"], 2, "unknown input"),
    # numbers out of range are input errors (exit 2) naming the option, never internal errors
    (["compare", W8, "--vary", "efficiency.gemm=x0,x1"], 2, "efficiency.gemm: a fraction of the peak rate"),
    (["sweep", W8, "--grid", "efficiency.gemm=x2"], 2, f"x2 of {DEFAULT.gemm:g} is {2 * DEFAULT.gemm:g}"),
    (["sweep", W8, "--grid", "num_gpus=256", "--seed", "-1"], 2, "--seed: expected a non-negative integer"),
    (["search", W8, "--gpus", "8", "--tp", "0,1"], 2, "--tp: expected positive integers up to 1,000,000,000 (got '0,1')"),
    (["search", W8, "--gpus", "8", "--micro-batch", "0"], 2, "--micro-batch: expected positive integers"),
    (["size", W8, "--deadline", "30d", "--counts", "0,256"], 2, "--counts: expected positive integers"),
    (["size", W8, "--deadline", "nan"], 2, "--deadline: must be a finite, positive amount (got 'nan')"),
    (["size", W8, "--deadline", "0"], 2, "--deadline: must be a finite, positive amount"),
    (["size", W8, "--deadline=-2d"], 2, "--deadline: must be a finite, positive amount"),
    (["size", W8, "--budget", "inf"], 2, "--budget: must be a finite, positive amount"),
    (["size", W8, "--budget", "$0"], 2, "--budget: must be a finite, positive amount"),
    (["search", W8, "--gpus", "8", "--set", "training.train_tokens=null"], 2,
     "training.train_tokens: the workload does not say how long to train"),
    # a bad output path fails before any work
    (["compare", W8, "--vary", "parallelism.micro_batch_size=1,2", "--plot", "x.xyz"], 2,
     "--plot: unknown chart format (got 'x.xyz')"),
    (["size", W8, "--deadline", "30d", "--plot", "chart"], 2, "--plot: the file name has no format suffix"),
    (["sensitivity", W8, "--plot", str(UNDER_A_FILE / "t.png")], 2, "--plot: cannot create the file"),
    (["search", W8, "--gpus", "8", "--write", str(UNDER_A_FILE / "best.yaml")], 2, "--write: cannot create"),
    (["search", W8, "--gpus", "8", "--write", str(ROOT / "tests")], 2, "--write: is a folder"),
    (["sweep", W8, "--grid", "num_gpus=256", "--out", str(UNDER_A_FILE / "s.csv")], 2, "--out: cannot create"),
])
def test_input_errors(capsys, argv, code, text):
    out = run(capsys, *argv, *QUICK, code=code)
    assert text in out.err + out.out


def test_size_with_a_layout_search_per_count(capsys):
    data = run_json(capsys, "size", W8, "--deadline", "40d", "--search", "--counts", "256,512,768", *QUICK)
    answer = data["answer"]
    assert answer["num_gpus"] == 512 and answer["time_to_train_days_p50"] <= 40
    assert "mb" in answer["layout"] and "ZeRO" in answer["layout"]     # a searched layout, not the file's
    assert [r["num_gpus"] for r in data["rows"]] == [256, 512, 768]
    # 768 = 3 x 256: only three pipeline stages take the factor 3, and 32 layers split over them
    # unevenly (11 / 11 / 10, Megatron's decoder_first/last_pipeline_num_layers)
    assert data["rows"][2]["closed_form_days"] is not None and "PP3(11/10)" in data["rows"][2]["layout"]


def test_plot_and_write_paths_are_checked_before_any_work(capsys, monkeypatch):
    import simulator.explore.sweep as sweep

    def no_work(*args, **kwargs):
        raise AssertionError("simulated before checking the output paths")

    monkeypatch.setattr(sweep, "run_cases", no_work)
    run(capsys, "compare", W8, "--vary", "parallelism.micro_batch_size=1,2", *QUICK, "--plot", "/tmp/x.xyz", code=2)
    run(capsys, "sweep", W8, "--grid", "num_gpus=256", *QUICK, "--plot", "c.png.nope", code=2)


def test_a_plot_in_a_new_folder_is_written(capsys, tmp_path):
    plot = tmp_path / "new" / "deeper" / "c.svg"
    run(capsys, "compare", W8, "--vary", "parallelism.micro_batch_size=1,2", *QUICK, "--plot", str(plot))
    assert plot.read_text().lstrip().startswith("<?xml")


def test_sweep_resume_refuses_other_options(capsys, tmp_path):
    out = tmp_path / "s.csv"
    argv = ["sweep", W8, "--grid", "parallelism.micro_batch_size=1,2,4", "--out", str(out), *QUICK]
    run(capsys, *argv)
    full = out.read_bytes()
    out.write_bytes(full[: full.index(b"\n", len(full) // 2) + 1])    # as if stopped half way
    part = out.read_bytes()
    for extra, text in ((["--seed", "1"], "--seed"), (["--replicas", "5"], "--replicas"),
                        (["--set", "cluster.node.nic_bandwidth=200 Gb/s"], "--set"), (["--gpus", "256"], "--gpus"),
                        (["--cluster", str(ROOT / "topologies" / "dgx-a100-selene.yaml")], "--cluster")):
        err = run(capsys, *argv, *extra, "--resume", code=2).err
        assert f"{text}" in err and "cannot resume" in err and "--force" in err, err
        assert out.read_bytes() == part
    des = [a for a in argv if a != "--fast"]
    assert "--fast (engine)" in run(capsys, *des, "--resume", code=2).err
    run(capsys, *argv, "--resume")
    assert out.read_bytes() == full


def test_search_takes_the_gpu_count_from_set_when_the_workload_layout_is_invalid(capsys):
    data = run_json(capsys, "search", W8, "--set", "parallelism.tensor_model_parallel_size=3",
                    "--set", "num_gpus=256", "--tp", "1", "--pp", "1", "--cp", "1", "--zero", "1",
                    "--recompute", "full", "--micro-batch", "1", "--top", "1", *QUICK)
    assert data["gpus"] == 256
    assert data["best"]["num_gpus"] == 256


def test_multiplied_checkpoint_interval_keeps_its_unit(capsys):
    """x2 on checkpoint.interval used to produce a bare 7200.0, which the config refuses as ambiguous."""
    from simulator.explore.values import base_value
    from simulator import load_scenario

    s = load_scenario(WORKLOADS / "llama3-8b.yaml", overrides=["checkpoint.interval=1 h"])
    assert base_value(s, "checkpoint.interval") == (3600.0, "time")


def test_sensitivity_says_why_a_cell_has_no_value(capsys):
    from simulator.cli import main

    code = main(["sensitivity", str(WORKLOADS / "llama3-8b.yaml"), "--fast", "--replicas", "2",
                 "--inputs", "gpu_price", "--add", "num_gpus"])
    out = capsys.readouterr().out
    assert code == 0
    assert "num_gpus low: invalid:" in out and "is not divisible" in out


def test_search_and_size_price_the_whole_schedule(capsys, tmp_path):
    """A phased workload: layouts are ranked on the top level, but re-simulated, sized and written with
    the phases, so `run` of the written file gives the search's days; a layout its long-context
    phase cannot hold is not shortlisted."""
    import yaml
    doc = yaml.safe_load((WORKLOADS / "llama3-8b.yaml").read_text())
    doc["cluster"] = str(ROOT / "topologies" / "dgx-h100-superpod.yaml")
    doc["num_gpus"] = 32
    doc["phases"] = [{"name": "main"},
                     {"name": "long", "train_tokens": "20B", "seq_length": 131072, "global_batch_size": 32}]
    wl = tmp_path / "phased.yaml"
    wl.write_text(yaml.safe_dump(doc))
    best = tmp_path / "best.yaml"
    data = run_json(capsys, "search", str(wl), "--gpus", "32", "--top", "2", *QUICK, "--write", str(best))
    ran = run_json(capsys, "run", str(best), "--fast", "--replicas", "4")
    assert [p["name"] for p in ran["phases"]] == ["main", "long"]
    assert ran["time_to_train_days_p50"] == data["best"]["time_to_train_days_p50"]
    flat = run_json(capsys, "search", str(wl), "--gpus", "32", "--top", "2", *QUICK, "--set", "phases=null")
    assert data["best"]["time_to_train_days_p50"] > flat["best"]["time_to_train_days_p50"]   # 131K tokens cost more
    sized = run_json(capsys, "size", str(wl), "--deadline", "3000d", "--search", "--counts", "32", *QUICK)
    answer = sized["answer"]
    assert answer["num_gpus"] == 32
    # size times the whole schedule too: more days than the top level alone, however it is laid out
    assert answer["status"] == "ok"
    assert answer["time_to_train_days_p50"] > flat["best"]["time_to_train_days_p50"]
