"""Training phases: parsing and strict validation, a hand-checkable two-phase run, JSON and text."""
from __future__ import annotations

import json
import math
import re

import pytest

from simulator import load_scenario, simulate
from simulator.cli import main
from simulator.config.scenario import build_scenario
from simulator.config.loader import read_yaml
from simulator.engine.campaign_plan import campaign_params
from simulator.engine.phases import phase_seed, run_phases
from simulator.errors import ConfigError
from tests.conftest import NO_FAILURES, R, TOPOLOGIES, WORKLOADS

DAY = 86400.0


def _raw(phases, **top):
    raw = read_yaml(WORKLOADS / "llama3-8b.yaml")
    raw.pop("phases", None)
    raw["training"] = {k: v for k, v in raw["training"].items() if k not in ("train_tokens", "train_iters")}
    raw["training"].update(top)
    raw["phases"] = phases
    return raw


def _build(phases, overrides=(), **top):
    craw = read_yaml(TOPOLOGIES / "dgx-h100-superpod.yaml")
    return build_scenario(_raw(phases, **top), craw, workload_source="w.yaml",
                          cluster_source="c.yaml", overrides=list(overrides))


def _error(phases, **top) -> str:
    with pytest.raises(ConfigError) as exc:
        _build(phases, **top)
    return str(exc.value)


# ---- parsing and validation -----------------------------------------------------------------
def test_phases_inherit_the_top_level_and_override_key_by_key():
    s = _build([{"train_iters": 10, "seq_length": 4096, "parallelism": {"micro_batch_size": 2}},
                {"train_tokens": "1B", "num_gpus": 128}])
    (n1, p1), (n2, p2) = s.phases
    assert (n1, n2) == ("phase 1", "phase 2")
    assert p1.workload.model.seq_length == 4096 and p1.layout.micro_batch_size == 2
    assert p1.workload.training.train_iters == 10 and p1.workload.training.train_tokens is None
    assert p1.layout.tp == s.layout.tp and p1.num_gpus == s.num_gpus
    assert p2.num_gpus == 128 and p2.workload.model.seq_length == s.workload.model.seq_length
    assert p2.layout.micro_batch_size == s.layout.micro_batch_size


def test_unknown_key_in_a_phase_names_its_path():
    msg = _error([{"train_iters": 10, "parallelism": {"tensor_paralel": 2}}])
    assert "phases[0].parallelism.tensor_paralel: unknown key" in msg
    assert "phases[0].seq_len: unknown key (did you mean seq_length?)" in _error([{"seq_len": 1}])


def test_phase_lengths_are_checked():
    assert "not both" in _error([{"train_iters": 10, "train_tokens": "1B"}])
    assert "more than one phase has no length" in _error([{"name": "a"}, {"name": "b"}], train_tokens="1T")
    assert "no length and the top level gives none" in _error([{"name": "a"}])
    assert "top-level length is unused" in _error([{"train_iters": 5}], train_tokens="1T")
    assert "leaving less than one step" in _error([{"train_tokens": "2T"}, {"name": "rest"}], train_tokens="1T")


def test_a_phase_that_does_not_divide_says_which_phase(capsys):
    msg = _error([{"name": "odd", "train_iters": 5, "parallelism": {"tensor_model_parallel_size": 3}}])
    assert msg.startswith("w.yaml: phases[0]") and "in odd" in msg


def test_cli_exits_2_on_a_bad_phase(tmp_path, capsys):
    raw = _raw([{"train_iters": 5, "parallelism": {"bogus": 1}}])
    raw["cluster"] = str(TOPOLOGIES / "dgx-h100-superpod.yaml")
    path = tmp_path / "w.yaml"
    path.write_text(json.dumps(raw))                      # JSON is YAML
    assert main(["run", str(path), "--fast"]) == 2
    assert "phases[0].parallelism.bogus: unknown key" in capsys.readouterr().err


def test_the_rest_phase_takes_what_the_others_leave():
    s = _build([{"train_tokens": "1B", "seq_length": 4096}, {"name": "rest"}], train_tokens="3B")
    rest = s.phases[1][1].workload.training
    assert rest.train_tokens == pytest.approx(2e9)


# ---- the campaign ---------------------------------------------------------------------------
def test_two_phases_total_time_is_the_sum_of_the_phases_and_the_switch():
    """No failures: phase k takes steps_k x step_k plus its checkpoints (none within 10 steps at
    the interval the workload sets); the switch costs phase 1's save and phase 2's restart."""
    s = _build([{"train_iters": 10, "seq_length": 4096}, {"train_iters": 20}], overrides=NO_FAILURES)
    r = simulate(s, engine="analytical", replicas=2)
    (a, b) = r.phases
    save = campaign_params(s.phases[0][1], a["step_time_s"], train_steps=10).save_s
    restart = campaign_params(s.phases[1][1], b["step_time_s"], train_steps=20).restart_s
    expect = 10 * a["step_time_s"] + 20 * b["step_time_s"] + save + restart
    assert r.campaign.time_to_train_days_p50 * DAY == pytest.approx(expect, rel=1e-9)
    assert r.campaign.time_lost_s["restart"] == pytest.approx(restart)
    assert r.train_steps == 30 and r.train_tokens == pytest.approx(10 * a["global_batch_size"] * 4096
                                                                  + 20 * b["global_batch_size"] * 8192)
    assert r.ideal_time_to_train_days * DAY == pytest.approx(10 * a["step_time_s"] + 20 * b["step_time_s"])
    assert a["step_time_s"] < b["step_time_s"]          # half the sequence: a shorter step
    assert r.energy.gpu_hours == pytest.approx(s.num_gpus * expect / 3600.0)


def test_a_phase_reports_its_own_time_and_ettr_and_the_switch_apart(capsys):
    """No failures: phase 2's own time is its steps, its ETTR 1, and the switch into it (phase 1's
    save + its restart) is `switch_in_s`, outside both; its GPU-hours include the switch, so the
    phases' GPU-hours still sum to the run's. A 3-step phase no longer reads ETTR 0.03."""
    s = _build([{"train_iters": 10, "seq_length": 4096}, {"train_iters": 3}], overrides=NO_FAILURES)
    r = simulate(s, engine="analytical", replicas=2)
    (a, b) = r.phases
    save = campaign_params(s.phases[0][1], a["step_time_s"], train_steps=10).save_s
    restart = campaign_params(s.phases[1][1], b["step_time_s"], train_steps=3).restart_s
    assert a["switch_in_s"] == 0 and b["switch_in_s"] == pytest.approx(save + restart, rel=1e-12)
    assert b["time_to_train_days_mean"] * DAY == pytest.approx(3 * b["step_time_s"], rel=1e-6)
    assert b["ettr"] == pytest.approx(1.0) and a["ettr"] == pytest.approx(1.0)
    with_switch = 3 * b["step_time_s"] / (3 * b["step_time_s"] + save + restart)
    assert b["ettr_with_switch"] == pytest.approx(with_switch, rel=1e-9) and with_switch < 0.1
    assert b["gpu_hours"] == pytest.approx(s.num_gpus * (3 * b["step_time_s"] + save + restart) / 3600)
    assert r.energy.gpu_hours == pytest.approx(a["gpu_hours"] + b["gpu_hours"], rel=1e-9)
    # the whole run's ETTR still counts the switch as lost time
    assert r.campaign.ettr < 1.0
    data = r.campaign.to_json()["phases"]
    assert data[1]["switch_in_s"] == pytest.approx(save + restart) and data[1]["ettr_in_phase"] == 1.0
    from simulator.report.summary import phase_lines
    lines = phase_lines(r.phases)
    assert "phase switch" not in lines[0] and "ETTR 1.00" in lines[1]
    assert re.search(r"ideal, [0-9.]+ s mean \(ETTR 1\.00\) after a [0-9.]+ min phase switch", lines[1])


def test_one_phase_equals_no_phases():
    """A phases list of one phase with the top level's values is the plain campaign, bit for bit."""
    plain = load_scenario(WORKLOADS / "llama3-8b.yaml")
    one = load_scenario(WORKLOADS / "llama3-8b.yaml", overrides=[
        "phases=[{name: all}]"])
    a = simulate(plain, engine="analytical", replicas=3, seed=5)
    b = simulate(one, engine="analytical", replicas=3, seed=5)
    assert a.campaign.time_to_train_days_samples == b.campaign.time_to_train_days_samples
    assert a.energy.gpu_hours == pytest.approx(b.energy.gpu_hours, rel=1e-12)


def test_phases_are_deterministic_and_seeded_apart():
    assert phase_seed(7, 0) == 7 and phase_seed(7, 1) != phase_seed(7, 2) != 7
    s = load_scenario(WORKLOADS / "llama3-405b.yaml")
    params = [campaign_params(ps, 7.0, train_steps=20_000) for _, ps in s.phases]
    names = [n for n, _ in s.phases]
    w1, per1 = run_phases(params, names, 3, 1)
    w2, _ = run_phases(params, names, 3, 1)
    assert w1.time_to_train_days_samples == w2.time_to_train_days_samples
    total = [sum(p.time_to_train_days_samples[i] for p in per1) for i in range(3)]
    assert list(w1.time_to_train_days_samples) == pytest.approx(total, rel=1e-12)


def test_405b_schedule_json_and_text(capsys):
    assert main(["run", str(WORKLOADS / "llama3-405b.yaml"), "--fast", "--replicas", "2", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    phases = data["phases"]
    assert [p["seq_length"] for p in phases] == [4096, 8192, 8192, 131072, 131072]
    assert [p["global_batch_size"] * p["seq_length"] for p in phases[1:3]] == [8 * 2**20, 16 * 2**20]
    assert sum(p["train_tokens"] for p in phases) == pytest.approx(15.6e12, rel=1e-3)
    assert data["train_tokens"] == pytest.approx(sum(p["train_tokens"] for p in phases))
    assert data["gpu_hours"] == pytest.approx(sum(p["gpu_hours"] for p in phases), rel=1e-9)
    assert "CP16" in phases[3]["layout"] and all(math.isfinite(p["mfu"]) for p in phases)
    assert main(["run", str(WORKLOADS / "llama3-405b.yaml"), "--fast", "--replicas", "2"]) == 0
    out = capsys.readouterr().out
    assert "phases           1. batch 4M, seq 4K: 8,192 GPUs" in out
    anneal = next(line for line in out.splitlines() if "5. annealing" in line)
    assert "phase switch" in anneal and "ETTR 0.0" not in anneal    # 3 steps after an 18-min switch
    assert phases[4]["ettr"] > 0.5 and phases[4]["ettr_with_switch"] < 0.2
    assert not re.search(r"\bnan\b", out, re.IGNORECASE)


PHASED_8B = ["--set", "phases=[{train_tokens: 1T, seq_length: 4096, num_gpus: 128}, {name: rest}]"]


def test_studies_keep_working_on_a_phased_workload(capsys):
    """size's failure-free bound sums the phases; a layout search explores the top level alone."""
    w = str(WORKLOADS / "llama3-8b.yaml")
    assert main(["size", w, "--deadline", "400d", "--fast", "--replicas", "2", "--counts", "256,512",
                 "--json", "--no-progress", *PHASED_8B]) == 0
    rows = json.loads(capsys.readouterr().out)["rows"]
    assert all(r["closed_form_days"] and r["time_to_train_days_p50"] >= r["closed_form_days"] for r in rows)
    assert main(["search", w, "--gpus", "64", "--fast", "--replicas", "2", "--no-progress", "--top", "2",
                 *PHASED_8B]) == 0
    assert "best:" in capsys.readouterr().out
    assert main(["compare", w, "--vary", "training.train_tokens=2T,15T", "--fast", "--replicas", "2",
                 "--no-progress", *PHASED_8B]) == 0
    assert not re.search(r"\bnan\b", capsys.readouterr().out, re.IGNORECASE)


def test_a_null_in_a_phase_clears_the_top_level_value():
    s = load_scenario(WORKLOADS / "llama3-405b.yaml", overrides=[
        "phases=[{name: flat, train_iters: 10, parallelism: {pipeline_model_parallel_layout: null, "
        "decoder_first_pipeline_num_layers: 7, decoder_last_pipeline_num_layers: 7}}]",
        "training.train_tokens=null"])
    assert s.layout.vpp == 8 and s.phases[0][1].layout.vpp == 1


def test_the_campaign_power_plot_draws_each_phase_at_its_own_power():
    """`run --plot`: a span of replica 0's timeline draws the levels of the phase it falls in (the
    8,192-GPU ramp-up at its own GPUs and step power), not the top level's 16,384-GPU job's."""
    from simulator.metrics.power import campaign_levels, power_model_of
    from simulator.report.plots import binned_power, power_levels, span_watts
    s = load_scenario(WORKLOADS / "llama3-405b.yaml")
    r = simulate(s, engine="analytical", replicas=1, timeline=True)
    levels = power_levels(r, power_model_of(s))
    starts = r.campaign.phase_starts_s
    assert [t0 for t0, _ in levels] == list(starts) and len(starts) == 5 and starts[0] == 0.0
    for (_, ps), (_, lv) in zip(s.phases, levels):
        assert lv["down"] == pytest.approx(power_model_of(ps).idle_facility())
    assert levels[1][1]["down"] < 0.6 * levels[2][1]["down"]          # 8,192 against 16,384 GPUs
    tl = r.campaign.timeline
    watts = span_watts(tl, levels)
    for (a, _, st), w in zip(tl[::997], watts[::997]):
        k = max(i for i, t0 in enumerate(starts) if t0 <= a)
        assert w == levels[k][1][st]
    # the binned curve: the ramp-up draws about half the main phase's power
    t, w = binned_power(tl, levels, 400)
    ramp = w[(t > starts[1]) & (t < starts[2])].mean()
    main_ = w[(t > starts[2]) & (t < starts[3])].mean()
    assert 0.4 < ramp / main_ < 0.6
    top = campaign_levels(power_model_of(s), r.energy.step_power_w["avg"])
    assert binned_power(tl, top, 400)[1][(t > starts[1]) & (t < starts[2])].mean() > 0.9 * main_
