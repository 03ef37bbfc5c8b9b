"""The published runs: accuracy of the fitted model (all rows reported, bounds on the good ones)."""
import pytest

from simulator.validation.runner import load_rows, mape, narayanan_flops, run_all, scenario_of
from simulator.model.arch import resolve
from simulator.model.flops import model_flops_per_token, recompute_flops_per_token


@pytest.fixture(scope="module")
def rows():
    return run_all()


def test_every_published_row_is_predicted(rows):
    assert len(rows) == len(load_rows()) == 32
    assert all(r.predicted > 0 for r in rows)


def test_overall_error(rows):
    assert mape(rows) < 0.06


def test_megatron_rows_each_within_ten_percent(rows):
    good = [r for r in rows if "zero3" not in r.run and r.source != "megatron-core-h100"]
    assert max(abs(r.error) for r in good) < 0.10
    assert mape(good) < 0.04
    # the Megatron-Core H100 table is a looser check (precision, recompute, micro batch unstated);
    # its bf16 rows now reduce fp32 gradients (Megatron's default), which costs the DP-heavy rows
    loose = [r for r in rows if r.source == "megatron-core-h100"]
    assert max(abs(r.error) for r in loose) < 0.20


def test_zero3_trend_is_reproduced(rows):
    """ZeRO-3 without model parallelism loses throughput as DP grows (Narayanan 2021, Table 2)."""
    z = {r.run: r.predicted for r in rows if "zero3" in r.run}
    assert z["gpt-174.6b-zero3-384"] > z["gpt-174.6b-zero3-768"] > z["gpt-174.6b-zero3-1536"]
    assert z["gpt-529.6b-zero3-640"] > z["gpt-529.6b-zero3-1120"] > z["gpt-529.6b-zero3-2240"]


def test_metric_formula_is_the_papers():
    row = load_rows()[0]
    s = scenario_of(row)
    a = resolve(s.workload.model)
    tokens = s.workload.training.global_batch_size * a.seq
    ours = (model_flops_per_token(a) + recompute_flops_per_token(a, "full")) * tokens
    assert narayanan_flops(s) == pytest.approx(ours, rel=1e-12)


def test_whole_runs_are_predicted_end_to_end():
    from simulator.validation.runner import whole_run_rows

    rows = whole_run_rows(replicas=4)
    assert {r.metric.split(" ")[0] for r in rows} == {"gpu_hours", "gpu_dynamic_energy"}
    for r in rows:   # reported honestly in docs/validation.md: -17% and -24% today
        assert r.predicted > 0 and abs(r.error) < 0.35
