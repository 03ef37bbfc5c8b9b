"""Sweeps: axis values and multipliers, streamed results, resume after an interruption, executors."""
from __future__ import annotations

import pytest

from simulator.cost.efficiency import DEFAULT

from simulator import load_scenario, simulate
from simulator.errors import ConfigError
from simulator.explore.cases import Inputs, SimOptions, Study, read_inputs
from simulator.explore.executors import InlineExecutor, batch_size, executor_for, map_ordered
from simulator.explore.results import read_rows
from simulator.explore.sweep import axis_cases, run_cases
from simulator.explore.values import parse_axis, split_values
from tests.conftest import TOPOLOGIES, WORKLOADS

W8 = WORKLOADS / "llama3-8b.yaml"
OPTS = SimOptions(engine="analytical", replicas=2)


@pytest.fixture(scope="module")
def study():
    inp, s = read_inputs(W8)
    axes = [parse_axis("num_gpus=256,512"), parse_axis("cluster.node.nic_bandwidth=200 Gb/s,400 Gb/s"),
            parse_axis("cluster.reliability.gpu_failures_per_gpu_hour=x1,x4")]
    inputs, cases = axis_cases(axes, s, inp, option="--grid")
    return Study(inputs, OPTS), cases


def test_values_are_split_like_yaml_lists():
    assert split_values("200 Gb/s,400 Gb/s") == ["200 Gb/s", "400 Gb/s"]
    assert split_values("[1,2],3,'a,b'") == ["[1,2]", "3", "'a,b'"]
    with pytest.raises(ConfigError, match="--grid"):
        parse_axis("num_gpus", "--grid")
    with pytest.raises(ConfigError):
        parse_axis("num_gpus=1,,2")


def test_multipliers_scale_the_base_value(study):
    _, cases = study
    assert len(cases) == 8 and cases[0].label == "num_gpus=256, nic_bandwidth=200 Gb/s, gpu_failures_per_gpu_hour=x1"
    x4 = [c for c in cases if "x4" in c.label][0]
    assert "cluster.reliability.gpu_failures_per_gpu_hour=5.04e-05" in x4.overrides
    s = load_scenario(W8, overrides=list(x4.overrides))
    assert s.cluster.reliability.gpu_failures_per_gpu_hour == pytest.approx(4 * 1.26e-5, rel=1e-12)
    inp, s = read_inputs(W8)
    _, (half,) = axis_cases([parse_axis("cluster.node.nic_bandwidth=x0.5")], s, inp)
    assert load_scenario(W8, overrides=list(half.overrides)).cluster.node.nic_bandwidth == pytest.approx(25e9)
    _, (eff,) = axis_cases([parse_axis("efficiency.gemm=x0.5")], s, inp)
    assert dict(eff.efficiency)["gemm"] == pytest.approx(0.5 * DEFAULT.gemm)
    with pytest.raises(ConfigError, match="whole number"):
        axis_cases([parse_axis("parallelism.micro_batch_size=x1.5")], s, inp)
    with pytest.raises(ConfigError, match="multiplier"):
        axis_cases([parse_axis("model.activation=x2")], s, inp)


def test_multipliers_of_a_cluster_key_scale_each_cluster_files_value():
    inp, s = read_inputs(W8)
    files = [str(TOPOLOGIES / "dgx-a100-selene.yaml"), str(TOPOLOGIES / "dgx-h100-superpod.yaml")]
    axes = [parse_axis("cluster=" + ",".join(files)), parse_axis("cluster.node.nic_bandwidth=x1,x2")]
    inputs, cases = axis_cases(axes, s, inp, ("cluster.reliability.restart_time=600 s",), option="--vary")
    nic = [load_scenario(W8, cluster=inputs[c.source].cluster_source, overrides=list(c.overrides))
           .cluster.node.nic_bandwidth for c in cases]
    assert nic == pytest.approx([25e9, 50e9, 50e9, 100e9])      # Selene 200 Gb/s, SuperPOD 400 Gb/s
    assert [c.label for c in cases][:2] == [f"cluster={files[0]}, nic_bandwidth=x1",
                                            f"cluster={files[0]}, nic_bandwidth=x2"]
    # the base --set of the same key is what the multiplier scales, on every cluster
    _, cases = axis_cases(axes, s, inp, ("cluster.node.nic_bandwidth=100 Gb/s",), option="--vary")
    assert [c.overrides[-1] for c in cases] == ["cluster.node.nic_bandwidth=12500000000.0 B/s",
                                                "cluster.node.nic_bandwidth=25000000000.0 B/s"] * 2


@pytest.mark.parametrize("spec, text", [
    ("efficiency.gemm=x0", "[0.01, 1]"), ("efficiency.gemm=x2", f"x2 of {DEFAULT.gemm:g} is {2 * DEFAULT.gemm:g}"),
    ("efficiency.gemm=1.5", "[0.01, 1]"), ("efficiency.network=0", "[0.01, 1]"), ("efficiency.memory=nan", "[0.01, 1]"),
    ("efficiency.fp8_gemm=x1.5", "[0.01, 1]"), ("efficiency.sparse_2to4=2", "[0.01, 1]"),
    ("efficiency.attention=x0", "[0.01, 1]"), ("efficiency.kernel_overhead=x0", "positive"),
])
def test_efficiencies_must_be_fractions_of_the_peak(spec, text):
    inp, s = read_inputs(W8)
    with pytest.raises(ConfigError, match=r"--grid: efficiency\.") as err:
        axis_cases([parse_axis(spec, "--grid")], s, inp, option="--grid")
    assert text in str(err.value) and repr(spec.split("=")[1]) in str(err.value)
    _, (ok,) = axis_cases([parse_axis("efficiency.gemm=1")], s, inp)
    assert ok.efficiency == (("gemm", 1.0),)


def test_rows_equal_direct_simulation(study):
    st, cases = study
    rows = run_cases(st, cases[:2], InlineExecutor(), progress=False)
    s = load_scenario(W8, overrides=list(cases[1].overrides))
    r = simulate(s, engine="analytical", replicas=2).to_json()
    assert rows[1]["step_time_s"] == r["step_time_s"]
    assert rows[1]["time_to_train_days_p50"] == r["time_to_train_days_p50"]
    assert rows[1]["cost_usd"] == r.get("cost_usd")


@pytest.mark.parametrize("suffix", [".csv", ".json"])
def test_interrupted_and_resumed_sweep_gives_the_same_file(tmp_path, study, suffix):
    st, cases = study
    full, part = tmp_path / f"full{suffix}", tmp_path / f"part{suffix}"
    rows = run_cases(st, cases, InlineExecutor(), out=full, progress=False)
    assert [r["case"] for r in read_rows(full)] == [c.label for c in cases] == [r["case"] for r in rows]
    run_cases(st, cases, InlineExecutor(), out=part, progress=False, stop_after=3)
    assert len(read_rows(part)) == 3
    with pytest.raises(ConfigError, match="exists"):
        run_cases(st, cases, InlineExecutor(), out=part, progress=False)
    run_cases(st, cases, InlineExecutor(), out=part, resume=True, progress=False, stop_after=2)
    # a crash in the middle of a row: the partial row is dropped and recomputed on resume
    text = part.read_bytes()
    part.write_bytes(text[: len(text) - 40])
    assert len(read_rows(part)) == 4
    run_cases(st, cases, InlineExecutor(), out=part, resume=True, progress=False)
    assert part.read_bytes() == full.read_bytes()


def test_resume_refuses_another_study(tmp_path, study):
    st, cases = study
    out = tmp_path / "r.csv"
    run_cases(st, cases, InlineExecutor(), out=out, progress=False, stop_after=2)
    with pytest.raises(ConfigError, match="same study"):
        run_cases(st, cases[::-1], InlineExecutor(), out=out, resume=True, progress=False)


@pytest.mark.parametrize("change, text", [
    (dict(options=SimOptions(engine="analytical", replicas=2, seed=1)), "--seed"),
    (dict(options=SimOptions(engine="analytical", replicas=3)), "--replicas"),
    (dict(options=SimOptions(engine="des", replicas=2)), "--fast"),
    (dict(meta={"set": ["cluster.node.nic_bandwidth=200 Gb/s"]}), "--set"),
])
def test_resume_refuses_rows_computed_with_other_options(tmp_path, study, change, text):
    st, cases = study
    out = tmp_path / "r.csv"
    run_cases(st, cases, InlineExecutor(), out=out, progress=False, stop_after=2, meta={"set": []})
    other = Study(st.inputs, change.get("options", st.options))
    with pytest.raises(ConfigError, match=text):
        run_cases(other, cases, InlineExecutor(), out=out, resume=True, progress=False,
                  meta=change.get("meta", {"set": []}))
    assert len(read_rows(out)) == 2                 # nothing appended
    # other contents under the same labels (e.g. an edited cluster file): refused too
    edited = Study(tuple(Inputs(i.wraw, {**i.craw, "num_nodes": 1}, i.workload_source, i.cluster_source)
                         for i in st.inputs), st.options)
    with pytest.raises(ConfigError, match="same study"):
        run_cases(edited, cases, InlineExecutor(), out=out, resume=True, progress=False, meta={"set": []})
    run_cases(st, cases, InlineExecutor(), out=out, resume=True, progress=False, meta={"set": []})
    assert len(read_rows(out)) == len(cases)


def test_resume_refuses_a_file_without_its_record(tmp_path, study):
    st, cases = study
    out = tmp_path / "r.json"
    run_cases(st, cases, InlineExecutor(), out=out, progress=False, stop_after=2)
    (tmp_path / "r.json.study.json").unlink()
    with pytest.raises(ConfigError, match="no record"):
        run_cases(st, cases, InlineExecutor(), out=out, resume=True, progress=False)


def test_a_failed_pool_warm_up_shuts_the_pool_down(monkeypatch):
    from concurrent.futures import Future

    from simulator.explore import executors

    shut = []

    class BrokenPool:
        def __init__(self, *args, **kwargs):
            pass

        def submit(self, fn, *args):
            f = Future()
            f.set_exception(RuntimeError("worker died"))
            return f

        def shutdown(self, wait=True, cancel_futures=False):
            shut.append((wait, cancel_futures))

    monkeypatch.setattr(executors, "ProcessPoolExecutor", BrokenPool)
    with pytest.raises(RuntimeError, match="worker died"):
        with executor_for(2):
            pass
    assert shut == [(False, True)]


def test_processes_and_dask_give_the_local_rows(study):
    distributed = pytest.importorskip("distributed")
    st, cases = study
    local = run_cases(st, cases, InlineExecutor(), progress=False)
    with executor_for(2) as pool:
        assert run_cases(st, cases, pool, progress=False) == local
    with distributed.LocalCluster(n_workers=1, processes=False, dashboard_address=None) as cluster:
        with executor_for(scheduler=cluster.scheduler_address) as ex:
            assert run_cases(st, cases, ex, progress=False) == local


def test_missing_scheduler_is_an_input_error():
    pytest.importorskip("distributed")
    with pytest.raises(ConfigError, match="scheduler"):
        with executor_for(scheduler="tcp://127.0.0.1:1", connect_timeout_s=0.5):
            pass


def test_map_ordered_keeps_order_and_batches():
    def square_all(_, xs):
        return [x * x for x in xs]

    with executor_for(2) as pool:
        assert list(map_ordered(pool, _square_all, None, list(range(23)), 4)) == [x * x for x in range(23)]
    assert list(map_ordered(InlineExecutor(), square_all, None, list(range(5)), 2)) == [0, 1, 4, 9, 16]
    assert batch_size(0.001, 1000, 2) == 100          # 0.1 s per task
    assert batch_size(0.001, 100, 4) == 25            # but every worker gets a share
    assert batch_size(1.0, 10, 2) == 1


def _square_all(_, xs):
    return [x * x for x in xs]


def test_a_grid_axis_can_index_a_phase_and_its_label_keeps_the_position():
    from simulator.explore.sweep import short_names
    from simulator.explore.values import check_key
    assert parse_axis("phases[2].num_gpus=8,16").key == "phases.2.num_gpus"
    check_key("phases.2.num_gpus")                                   # no error: a list position
    with pytest.raises(ConfigError, match="unknown key"):
        check_key("phases.2.num_gpu")
    names = short_names(["phases.2.num_gpus", "num_gpus", "cluster.node.nic_bandwidth"])
    assert names == {"phases.2.num_gpus": "phases.2.num_gpus", "num_gpus": "num_gpus",
                     "cluster.node.nic_bandwidth": "nic_bandwidth"}
