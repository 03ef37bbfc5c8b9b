"""`trainsim levers` and `trainsim plan`: the lever set, its table, chart and JSON, and input errors."""
import json

import pytest

from simulator.cli import main
from simulator.explore.levers import LeverOptions, evaluate
from simulator.model import scaling
from tests.conftest import WORKLOADS

FAST = ["--fast", "--replicas", "2"]


@pytest.fixture(scope="module")
def llama_rows():
    rows = evaluate(WORKLOADS / "llama3-8b.yaml", engine="analytical", replicas=2)
    return {r.lever.key: r for r in rows}


def test_every_lever_alone_and_combined(llama_rows):
    assert list(llama_rows) == ["baseline", "optimizer", "fp8", "sparsity", "compute_optimal", "pruned", "combined"]
    assert not any(r.error for r in llama_rows.values())
    base = llama_rows["baseline"].metrics
    for key in ("optimizer", "fp8", "sparsity", "compute_optimal", "combined"):
        m = llama_rows[key].metrics
        assert m["time_to_train_days_p50"] < base["time_to_train_days_p50"]
        for k in ("gpu_hours", "energy_mwh", "co2_tonnes", "cost_usd"):
            assert m.get(k) is not None and m[k] < base[k], (key, k)


def test_combined_row_composes_its_levers(llama_rows):
    r = {k: v.metrics for k, v in llama_rows.items()}
    base, comb = r["baseline"], r["combined"]
    # the step count is the optimizer's; the step time is FP8 + 2:4 with the Hessian overhead
    assert comb["train_steps"] == r["optimizer"]["train_steps"] == -(-base["train_steps"] // 2)
    assert comb["ideal_time_to_train_days"] / base["ideal_time_to_train_days"] == pytest.approx(
        comb["train_steps"] / base["train_steps"] * comb["step_time_s"] / base["step_time_s"], rel=1e-9)
    fp8, sp = base["step_time_s"] / r["fp8"]["step_time_s"], base["step_time_s"] / r["sparsity"]["step_time_s"]
    hessian = r["optimizer"]["step_time_s"] / base["step_time_s"]
    assert hessian == pytest.approx(1.05, abs=0.01)
    assert comb["step_time_s"] / base["step_time_s"] > hessian / (fp8 * sp)     # shared GEMMs: not a product
    assert comb["step_time_s"] < min(r["fp8"]["step_time_s"], r["sparsity"]["step_time_s"]) * hessian


def test_model_levers_keep_the_loss_or_the_retraining_fraction(llama_rows):
    base = llama_rows["baseline"].metrics
    co = llama_rows["compute_optimal"].metrics
    assert scaling.loss(co["num_parameters"], co["train_tokens"]) == pytest.approx(
        scaling.loss(base["num_parameters"], base["train_tokens"]), abs=2e-3)
    assert co["num_parameters"] > 2 * base["num_parameters"]       # overtrained 8B: bigger is cheaper
    pr = llama_rows["pruned"]
    assert pr.metrics["train_tokens"] == pytest.approx(base["train_tokens"] / 40, rel=1e-3)
    assert pr.metrics["num_parameters"] < 0.65 * base["num_parameters"]
    assert any(o.startswith("training.optimizer.overhead_flops_fraction=") for o in pr.metrics["overrides"])


def test_levers_on_a100_mark_fp8_unavailable():
    rows = evaluate(WORKLOADS / "gpt3-175b.yaml", engine="analytical", replicas=2,
                    opts=LeverOptions(levers=("optimizer", "fp8", "sparsity")))
    by = {r.lever.key: r for r in rows}
    assert "FP8" in by["fp8"].error and "A100" in by["fp8"].error
    assert by["combined"].lever.overrides == by["optimizer"].lever.overrides + by["sparsity"].lever.overrides


def test_moe_workload_has_no_scaling_law_lever():
    rows = evaluate(WORKLOADS / "mixtral-8x7b.yaml", engine="analytical", replicas=2,
                    opts=LeverOptions(levers=("compute_optimal",)))
    assert "dense" in rows[1].error


def test_levers_cli_table_chart_and_json(capsys, tmp_path):
    png = tmp_path / "levers.png"
    assert main(["levers", str(WORKLOADS / "llama3-8b.yaml"), *FAST, "--only", "optimizer,fp8",
                 "--plot", str(png)]) == 0
    out = capsys.readouterr().out
    for text in ("baseline", "sophia optimizer", "FP8", "P50 d", "GPU-h", "MWh", "tCO2e", "Liu et al. 2023"):
        assert text in out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["levers", str(WORKLOADS / "llama3-8b.yaml"), *FAST, "--only", "sparsity", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [r["key"] for r in data["levers"]] == ["baseline", "sparsity"]
    assert data["levers"][1]["overrides"] == ["training.sparsity_2to4=true"]


def test_plan_compute_budget_json(capsys):
    assert main(["plan", "--compute-budget", "3.8e25", "--json"]) == 0
    p = json.loads(capsys.readouterr().out)["proposal"]
    assert p["params"] == pytest.approx(2.1348e11, rel=0.01) and p["tokens"] == pytest.approx(2.9667e13, rel=0.01)


def test_plan_prices_the_same_loss_against_a_workload(capsys):
    assert main(["plan", "--workload", str(WORKLOADS / "gpt3-175b.yaml"), *FAST, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    base, prop = (r["metrics"] for r in out["rows"])
    assert out["proposal"]["loss"] == pytest.approx(out["workload"]["loss"])
    # GPT-3 (175B on 300B tokens) is undertrained: a smaller model on more tokens, cheaper
    assert prop["num_parameters"] < base["num_parameters"] / 5 and prop["train_tokens"] > 3 * base["train_tokens"]
    assert prop["cost_usd"] < base["cost_usd"]


@pytest.mark.parametrize("argv, text", [
    (["plan"], "nothing to plan"),
    (["plan", "--target-loss", "1.6"], "irreducible"),
    (["plan", "--compute-budget", "1e24", "--target-loss", "2"], "not both"),
    (["plan", "--params", "0.1B", "--target-loss", "2.0"], "never reaches"),
    (["plan", "--workload", str(WORKLOADS / "mixtral-8x7b.yaml")], "dense"),
    (["levers", str(WORKLOADS / "llama3-8b.yaml"), "--only", "fp9"], "unknown lever"),
    (["levers", str(WORKLOADS / "llama3-8b.yaml"), "--prune-width", "2"], "fraction"),
    (["levers", str(WORKLOADS / "llama3-8b.yaml"), "--seed", "-1"], "--seed: expected a non-negative integer"),
    (["plan", "--compute-budget", "1e24", "--seed", "-3"], "--seed: expected a non-negative integer"),
    (["levers", str(WORKLOADS / "llama3-8b.yaml"), "--replicas", "0"], "--replicas: expected a positive integer"),
    (["plan", "--target-loss", "nan"], "--target-loss: the target loss must be a finite number (got nan)"),
    (["plan", "--target-loss", "inf", "--json"], "--target-loss: the target loss must be a finite number (got inf)"),
    (["levers", str(WORKLOADS / "llama3-8b.yaml"), *FAST, "--plot", "levers.xyz"],
     "--plot: unknown chart format (got 'levers.xyz')"),
    (["levers", str(WORKLOADS / "llama3-8b.yaml"), *FAST, "--plot", str(WORKLOADS / "llama3-8b.yaml" / "x.png")],
     "--plot: cannot create the file"),
])
def test_bad_lever_input_is_exit_2(capsys, argv, text):
    assert main(argv) == 2
    assert text in capsys.readouterr().err


def test_levers_plot_in_a_new_folder(capsys, tmp_path):
    png = tmp_path / "new" / "levers.png"
    assert main(["levers", str(WORKLOADS / "llama3-8b.yaml"), *FAST, "--only", "fp8", "--plot", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_optimizer_lever_uses_the_presets_overhead_not_the_workloads():
    w = WORKLOADS / "llama3-8b.yaml"
    heavy = evaluate(w, engine="analytical", replicas=2, opts=LeverOptions(levers=("optimizer",)),
                     overrides=["training.optimizer.overhead_flops_fraction=0.3"])
    light = evaluate(w, engine="analytical", replicas=2, opts=LeverOptions(levers=("optimizer",)))
    assert "training.optimizer.overhead_flops_fraction=null" in heavy[1].metrics["overrides"]
    assert "training.optimizer.hessian_interval=null" in heavy[1].metrics["overrides"]
    # the lever's row is sophia's (+5% per step) whatever overhead the baseline's optimizer had
    assert heavy[1].metrics["step_time_s"] == pytest.approx(light[1].metrics["step_time_s"], rel=1e-12)
    assert heavy[1].metrics["step_time_s"] < heavy[0].metrics["step_time_s"] / 1.2
    # a sophia baseline with its own Hessian interval: the adamw lever drops it (no estimate)
    rows = evaluate(w, engine="analytical", replicas=2, opts=LeverOptions(optimizer="adamw", levers=("optimizer",)),
                    overrides=["training.optimizer.kind=sophia", "training.optimizer.hessian_interval=20"])
    assert not rows[1].error
    assert rows[1].metrics["step_time_s"] < rows[0].metrics["step_time_s"]



def test_striking_levers_carry_their_caveats(llama_rows):
    """The table travels without the docs: the rows whose ratio misleads alone say what it leaves out."""
    assert "not a model trained from scratch" in llama_rows["pruned"].lever.note
    assert "re-evaluations" in llama_rows["optimizer"].lever.note
    assert "the parameters to serve" in llama_rows["compute_optimal"].lever.note
    assert "to serve" not in llama_rows["pruned"].lever.note
