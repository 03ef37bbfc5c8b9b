"""Hostile inputs found by a fuzzing round: each gets a clear error (exit 2), never a hang, a
traceback or a silent wrong value."""
from __future__ import annotations

import json
import time

import pytest

from simulator.cli import main
from simulator.config.safe_yaml import safe_load
from tests.conftest import ROOT, WORKLOADS

W8 = str(WORKLOADS / "llama3-8b.yaml")


def _err(capsys, argv, code=2) -> str:
    assert main(argv) == code
    return capsys.readouterr().err


@pytest.mark.parametrize("flag, value", [("--compute-budget", "1e100"), ("--params", "1e30"),
                                         ("--target-loss", "1.6900001")])
def test_plan_beyond_any_trainable_model_is_refused_at_once(capsys, flag, value):
    start = time.perf_counter()
    err = _err(capsys, ["plan", "--workload", W8, flag, value, "--fast", "--replicas", "2"])
    assert time.perf_counter() - start < 10          # was: minutes, memory growing without bound
    assert flag in err and "beyond any trainable model" in err


@pytest.mark.parametrize("extra", [["--set", "modle.typo=3"], ["--cluster", "/nonexistent.yaml"], ["--gpus", "8"]])
def test_plan_without_a_workload_refuses_the_workload_options(capsys, extra):
    err = _err(capsys, ["plan", "--compute-budget", "1e24", *extra])
    assert extra[0] in err and "--workload" in err


def test_topology_whose_halves_split_a_domain_prints_no_bisection(capsys):
    assert main(["topology", str(ROOT / "topologies" / "dgx-h100-superpod.yaml"), "--nodes", "513"]) == 0
    assert "bisection n/a" in capsys.readouterr().out


@pytest.mark.parametrize("text", ["032", "0b100", "1_6", "08", "1_0.5"])
def test_yaml_1_1_integer_forms_stay_text(text):
    """`040` was 32 (octal), `0b100` 4, `1_6` 16: a layer count or a batch silently changed."""
    assert safe_load(f"a: {text}")["a"] == text


def test_yaml_1_2_numbers_still_read():
    assert safe_load("a: [0, -3, 12, 0x10, 1.5, 1e3, .5]")["a"] == [0, -3, 12, 16, 1.5, 1000.0, 0.5]


def test_a_leading_zero_layer_count_is_an_error(capsys):
    err = _err(capsys, ["run", W8, "--fast", "--set", "model.num_layers=032"])
    assert "model.num_layers" in err and "'032'" in err


def test_two_outputs_on_one_path_are_refused_before_any_work(capsys, tmp_path):
    same = str(tmp_path / "x.html")
    err = _err(capsys, ["run", W8, "--replicas", "2", "--trace", same, "--report", same])
    assert "--report" in err and "--trace" in err
    assert not (tmp_path / "x.html").exists()
    pd = tmp_path / "pd"
    err = _err(capsys, ["run", W8, "--replicas", "2", "--plot", str(pd), "--trace", str(pd / "step_power.png")])
    assert "--plot" in err and not (pd / "step_power.png").exists()


def _swept(capsys, out) -> list[str]:
    """A finished two-case sweep into ``out``; its argv, to resume."""
    argv = ["sweep", W8, "--grid", "num_gpus=256,512", "--out", str(out), "--fast", "--replicas", "2",
            "--workers", "1", "--no-progress"]
    assert main(argv) == 0
    capsys.readouterr()
    return argv


def test_resume_refuses_a_json_file_it_did_not_write(capsys, tmp_path):
    out = tmp_path / "s.json"
    argv = _swept(capsys, out)
    out.write_text("{}\n")
    assert "not a results file" in _err(capsys, argv + ["--resume"])
    assert out.read_text() == "{}\n"                # left as it was


def test_resume_with_a_study_record_nested_past_the_parser(capsys, tmp_path):
    argv = _swept(capsys, tmp_path / "s.csv")
    (tmp_path / "s.csv.study.json").write_text("[" * 100_000 + "]" * 100_000)
    assert "cannot resume" in _err(capsys, argv + ["--resume"])


@pytest.mark.parametrize("env, extra", [({"PYTHONIOENCODING": "ascii"}, []),
                                        ({"MPLBACKEND": "nonsense"}, ["--plot", "{tmp}/charts"])])
def test_a_hostile_environment_is_no_crash(tmp_path, env, extra):
    import os
    import subprocess
    import sys

    argv = [sys.executable, "-m", "simulator", "run", W8, "--replicas", "2", "--fast"]
    argv += [a.replace("{tmp}", str(tmp_path)) for a in extra]
    done = subprocess.run(argv, env={**os.environ, **env}, capture_output=True, timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-500:]
    assert b"step time" in done.stdout


@pytest.mark.parametrize("key, value, needle", [("max_gemm_fraction", "1e-300", "greater than or equal to 0.05"),
                                                ("hbm_usable", "'200 GiB'", "exceeds hbm_capacity")])
def test_an_inline_gpu_outside_physics_is_refused(capsys, key, value, needle):
    """A 1e-300 matmul ceiling gave a 5.9e299 s step with exit 0; usable memory above the fitted HBM
    let layouts 'fit' that cannot."""
    cluster = str(ROOT / "topologies" / "grand-teton-h100-96gb.yaml")
    err = _err(capsys, ["run", W8, "--fast", "--cluster", cluster, "--set", f"cluster.gpu.{key}={value}"])
    assert needle in err and key in err


def test_sensitivity_with_an_empty_input_list_is_an_error(capsys):
    """`--inputs ''` silently meant every input."""
    assert "--inputs" in _err(capsys, ["sensitivity", W8, "--inputs", " , ", "--fast"])


CLUSTER = str(ROOT / "topologies" / "dgx-h100-superpod.yaml")


@pytest.mark.parametrize("header, line, want", [
    ("run,workload,tp,tp,metric,value", "a,llama3-8b,1,2,step_time_s,5", "tp: a column given twice"),
    ("run,workload,tp,parallelism.tensor_model_parallel_size,metric,value", "a,llama3-8b,1,2,step_time_s,5",
     "(as tp and parallelism.tensor_model_parallel_size)"),
    ("run,workload,metric,value,", "a,llama3-8b,step_time_s,5,", "column 5 of the header has no name"),
    ("run,workload,metric,value", "a,llama3-8b,step_time_s,5,7", "line 3 (a): 5 cells but the header has 4"),
])
def test_calibrate_csv_shape_errors(capsys, tmp_path, header, line, want):
    """A duplicated column took one of its two values silently; an extra cell was dropped."""
    csv = tmp_path / "m.csv"
    csv.write_text(f"{header}\n\n{line}\nb,llama3-8b,step_time_s,6\n")   # the blank line: line numbers are physical
    err = _err(capsys, ["calibrate", str(csv), "--cluster", CLUSTER, "--out", str(tmp_path / "c.yaml")])
    assert want in err and "m.csv" in err
    assert not (tmp_path / "c.yaml").exists()


@pytest.mark.parametrize("extra", [["--out", "x.yaml"], ["--params", "gemm"], ["--force"]])
def test_calibrate_check_refuses_the_flags_it_would_ignore(capsys, tmp_path, extra):
    csv = tmp_path / "m.csv"
    csv.write_text("workload,metric,value\nllama3-8b,step_time_s,5\nllama3-8b,step_time_s,6\n")
    err = _err(capsys, ["calibrate", str(csv), "--cluster", CLUSTER, "--check", str(tmp_path / "none.yaml"), *extra])
    assert extra[0] in err and "--check fits nothing" in err


def test_levers_prune_width_below_one_channel_block_is_an_error(capsys):
    """Width 1e-9 was clamped to 128 channels and priced as if asked."""
    err = _err(capsys, ["levers", W8, "--prune-width", "1e-9", "--only", "pruned", "--fast", "--replicas", "2"])
    assert "--prune-width" in err and "4,096 channels" in err and "0.0156" in err


@pytest.mark.parametrize("name, code", [("x\x1b[31mred", "U+001B"), ("a\u202eb", "U+202E"), ("two\nlines", "U+000A")])
def test_names_with_control_characters_are_refused_and_echoed_escaped(capsys, name, code):
    """An escape code in a workload's name reached the terminal raw (in the summary and the error)."""
    err = _err(capsys, ["run", W8, "--fast", "--replicas", "2", "--set", f"name={name!r}".replace("'", '"')])
    assert code in err and "\x1b" not in err and "\u202e" not in err


def test_a_name_longer_than_200_characters_is_refused(capsys):
    err = _err(capsys, ["run", W8, "--fast", "--replicas", "2", "--set", "name=" + "n" * 201])
    assert "at most 200 characters (it has 201)" in err


def test_unicode_names_still_read(capsys):
    assert main(["run", W8, "--fast", "--replicas", "2", "--set", "name=Llama 3 — 8B ✓"]) == 0
    assert capsys.readouterr().out.startswith("Llama 3 — 8B ✓ on")


@pytest.mark.parametrize("flag", ["--report", "--plot"])
def test_an_output_name_over_255_bytes_names_the_flag(capsys, tmp_path, flag):
    """Was a bare "File name too long" with no flag (an OSError from the path check)."""
    path = str(tmp_path / ("a" * 300))
    err = _err(capsys, ["run", W8, "--fast", "--replicas", "2", flag, path + (".html" if flag == "--report" else "")])
    assert err.startswith(f"error: {flag}:") and "file systems allow 255" in err


# fuzz round 3 (s34) -------------------------------------------------------------------------------

@pytest.mark.parametrize("flag, value, want", [
    ("--target-loss", "1e308", "the fit cannot answer it"),          # was an internal error
    ("--compute-budget", "1", "below any model worth pricing"),     # was a 0.6-parameter proposal
    ("--compute-budget", "1e-300", "below any model worth pricing"),
])
def test_plan_questions_outside_the_fit_are_refused(capsys, flag, value, want):
    err = _err(capsys, ["plan", flag, value])
    assert err.startswith(f"error: {flag}:") and want in err


def test_topology_drawing_too_big_names_nodes_and_the_largest_count(capsys, tmp_path):
    """Was an internal error (a ValueError from the drawing)."""
    err = _err(capsys, ["topology", CLUSTER, "--draw", str(tmp_path / "d.png"), "--nodes", "600"])
    assert "--nodes (with --draw)" in err and "at most 3,000" in err and "--nodes 311 or fewer" in err
    assert not (tmp_path / "d.png").exists()


def test_topology_fabric_error_names_the_file_and_nodes(capsys):
    err = _err(capsys, ["topology", CLUSTER, "--nodes", "1000000000"])
    assert err.startswith(f"error: {CLUSTER} (with --nodes 1000000000): fabric:")


def test_calibrate_figure_a_hundred_times_off_the_prediction_is_refused(capsys, tmp_path):
    """mfu 1e-320 printed 'inf %' and wrote JSON with Infinity."""
    csv = tmp_path / "m.csv"
    csv.write_text("workload,metric,value\nllama3-8b,mfu,1e-320\nllama3-8b,step_time_s,6\n")
    err = _err(capsys, ["calibrate", str(csv), "--cluster", CLUSTER, "--out", str(tmp_path / "c.yaml"), "--json"])
    assert "line 2" in err and "the shipped prediction" in err and "within 100x" in err


def test_a_cluster_without_failures_runs_and_says_so(capsys):
    """Every failure rate 0 is valid (documented >= 0) but the infinite MTBF failed the finite check."""
    keys = ("gpu_failures_per_gpu_hour", "host_failures_per_node_hour", "network_failures_per_node_hour",
            "software_failures_per_node_hour", "planned_maintenance_per_node_hour")
    sets = [a for k in keys for a in ("--set", f"cluster.reliability.{k}=0")]
    assert main(["run", W8, "--fast", "--replicas", "2", *sets]) == 0
    assert "job MTBF none (no failure rates)" in capsys.readouterr().out
    assert main(["run", W8, "--fast", "--replicas", "2", "--json", *sets]) == 0
    import json

    data = json.loads(capsys.readouterr().out, parse_constant=lambda c: pytest.fail(f"non-finite {c} in JSON"))
    assert data["campaign"]["mtbf_hours"] is None and data["failures"]["total"] == 0


def test_an_implausible_sm_count_is_refused(capsys):
    gpu = ("cluster.gpu={name: g, peak_flops: {bf16: 989 TFLOP/s}, hbm_capacity: 80 GiB, hbm_bandwidth: 3.35 TB/s, "
           "tdp: 700 W, idle_power: 100 W, sm_count: 1000000000}")   # was a 68-hour step, MFU 0.0 %
    err = _err(capsys, ["run", W8, "--fast", "--set", gpu])
    assert "sm_count" in err and "4096" in err


@pytest.mark.parametrize("flag, value", [("--micro-batch", "1024"), ("--vpp", "1000000000")])
def test_search_space_flags_no_layout_can_meet_name_the_flag(capsys, flag, value):
    """Were an 'infeasible' blaming the pipeline split."""
    err = _err(capsys, ["search", W8, "--gpus", "512", flag, value])
    assert err.startswith(f"error: {flag}:")


@pytest.mark.parametrize("vary", ["efficiency.gemm=1e-320,0.5", "efficiency.network=x1e-320",
                                  "efficiency.host_launch=x1e300"])
def test_efficiencies_far_outside_any_gpu_are_refused(capsys, vary):
    """1e-320 passed the (0, 1] check and made the step NaN, blamed on the cluster's GPU."""
    err = _err(capsys, ["compare", W8, "--vary", vary, "--fast", "--replicas", "2"])
    assert err.startswith("error: --vary:") and vary.split("=")[0] in err


def test_a_phase_that_does_not_fit_is_named(capsys):
    err = _err(capsys, ["run", W8, "--fast", "--replicas", "2", "--set",
                        "phases=[{name: long, train_iters: 10, seq_length: 131072}, {name: rest}]"], code=3)
    assert "training phase 1 of 2 ('long', phases[0])" in err


def test_indexing_phases_a_workload_does_not_have(capsys):
    err = _err(capsys, ["run", W8, "--fast", "--set", "phases[0].num_gpus=8"])
    assert "phases is not a list" in err and "has no item 0" in err


def test_size_max_gpus_below_the_layout_names_the_flag(capsys):
    err = _err(capsys, ["size", W8, "--deadline", "60d", "--max-gpus", "1"])
    assert err.startswith("error: --max-gpus:") and "--max-gpus 2 or more" in err


def test_cli_limits_and_duplicates(capsys):
    assert "up to 200" in _err(capsys, ["search", W8, "--top", "0"])
    assert "a lever named twice" in _err(capsys, ["levers", W8, "--only", "fp8,fp8", "--fast"])
    err = _err(capsys, ["run", W8, "--fast", "--set", "parallelism=null"])
    assert "a section (a mapping of keys)" in err and "ParallelismConfig" not in err


def test_train_tokens_beyond_any_run_are_refused(capsys):
    err = _err(capsys, ["run", W8, "--fast", "--set", "training.train_tokens=1e30"])
    assert "training.train_tokens" in err and "at most 1e+20 tokens" in err


def test_a_full_standard_output_is_named(tmp_path):
    import subprocess
    import sys

    with open("/dev/full", "w") as full:
        done = subprocess.run([sys.executable, "-m", "simulator", "run", W8, "--fast", "--replicas", "2"],
                              stdout=full, stderr=subprocess.PIPE, cwd=ROOT, timeout=120)
    assert done.returncode == 2
    assert b"error: standard output: No space left on device" in done.stderr


@pytest.mark.parametrize("key, value, ceiling", [
    ("cluster.node.nic_bandwidth", "1e300 Gb/s", "1 PB/s"), ("cluster.prices.gpu_hour", "1e300 USD", "1e12 USD"),
    ("cluster.power.node_overhead", "1e30 W", "1 GW"), ("memory.runtime_reserve", "1e30 TB", "1 PB")])
def test_quantities_far_beyond_any_hardware_are_refused(capsys, key, value, ceiling):
    """Were accepted: `$1.2e+291`, `45.6 of 931322574615478557428077494796288.0 GiB`."""
    err = _err(capsys, ["run", W8, "--fast", "--set", f"{key}={value}"])
    assert f"expected at most {ceiling}" in err


def test_a_checkpoint_interval_under_one_step_is_said_to_round_up(capsys):
    """1e-9 s was rounded to one step with no word."""
    assert main(["run", W8, "--fast", "--replicas", "2", "--set", "checkpoint.interval=1e-9 s"]) == 0
    assert "warning          checkpoint.interval 1e-09 s is shorter than one step" in capsys.readouterr().out


def test_a_second_ctrl_c_ends_a_study_with_workers_at_once(tmp_path):
    """Two Ctrl-C in a row hung a sweep with worker processes (a traceback from the pool's exit join,
    then a wait for ever); the second one now ends the process."""
    import signal
    import subprocess
    import sys

    out = tmp_path / "d.json"
    p = subprocess.Popen([sys.executable, "-m", "simulator", "sweep", W8, "--grid", "num_gpus=256,512,1024,2048",
                          "--replicas", "3000", "--workers", "2", "--out", str(out), "--no-progress"],
                         cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    time.sleep(2.5)
    p.send_signal(signal.SIGINT)
    time.sleep(0.1)
    p.send_signal(signal.SIGINT)
    try:
        _, err = p.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        p.kill()
        pytest.fail("the study did not stop after two interrupts")
    assert p.returncode == 130 and b"Traceback" not in err


def test_the_first_interrupt_is_a_keyboard_interrupt_and_arms_the_second():
    import signal

    from simulator import cli

    previous = signal.getsignal(signal.SIGINT)
    try:
        with pytest.raises(KeyboardInterrupt):
            cli._interrupted(signal.SIGINT, None)
        assert signal.getsignal(signal.SIGINT) is cli._interrupted_again
    finally:
        signal.signal(signal.SIGINT, previous)


def test_search_of_a_phased_workload_whose_own_layout_misfits_the_count(capsys):
    """The fallback read (a trivial layout on one GPU) built the phases too, whose own num_gpus the
    trivial layout does not divide: exit 2 for a search the user could not fix."""
    assert main(["search", str(WORKLOADS / "llama3-405b.yaml"), "--gpus", "1024", "--fast", "--replicas", "2",
                 "--top", "1"]) == 0
    assert "best: " in capsys.readouterr().out


@pytest.mark.parametrize("content", ["important notes\n", "a,b\n1,2\n"])
def test_resume_refuses_a_file_whose_header_is_not_the_study(capsys, tmp_path, content):
    """A one-line file beside a copied .study.json was replaced by --resume."""
    args = ["sweep", W8, "--grid", "num_gpus=256,512", "--fast", "--replicas", "2", "--no-progress"]
    first = tmp_path / "a.csv"
    assert main([*args, "--out", str(first)]) == 0
    target = tmp_path / "b.csv"
    target.write_text(content)
    (tmp_path / "b.csv.study.json").write_text((tmp_path / "a.csv.study.json").read_text())
    capsys.readouterr()
    err = _err(capsys, [*args, "--out", str(target), "--resume"])
    assert "its header is not this study's" in err and target.read_text() == content


def test_a_chart_format_needing_latex_is_refused_before_any_work(capsys, tmp_path):
    """.pgf ran the whole study, then failed with an internal error (no xelatex)."""
    err = _err(capsys, ["compare", W8, str(WORKLOADS / "mixtral-8x7b.yaml"), "--fast", "--replicas", "2",
                        "--plot", str(tmp_path / "c.pgf")])
    assert "unknown chart format" in err and ".pgf" not in err.split("expected")[1]


@pytest.mark.parametrize("value", ["x-1", "xinf", "xnan", "x1e400"])
def test_malformed_multipliers_are_errors_naming_the_axis(capsys, value):
    """Were taken as literal text ('should be a valid integer'), x1e400 echoed as xinf."""
    err = _err(capsys, ["compare", W8, "--vary", f"training.global_batch_size={value}", "--fast", "--replicas", "2"])
    assert err.startswith("error: --vary: training.global_batch_size: not a multiplier") and value in err


@pytest.mark.parametrize("key, want", [("training.checkpoint.interval", "did you mean checkpoint.interval?"),
                                       ("model.num_layers.x", "model.num_layers is a value, not a section")])
def test_misplaced_grid_keys_are_explained_before_any_case(capsys, key, want):
    err = _err(capsys, ["sweep", W8, "--grid", f"{key}=1,2", "--fast", "--replicas", "2"])
    assert err.startswith("error: --grid:") and want in err


def test_sensitivity_needs_a_training_length_and_marks_rounded_moves(capsys):
    err = _err(capsys, ["sensitivity", W8, "--set", "training.train_tokens=null", "--fast", "--replicas", "2"])
    assert "does not say how long to train" in err
    assert main(["sensitivity", W8, "--inputs", "gpu_price", "--add", "parallelism.micro_batch_size",
                 "--fast", "--replicas", "2"]) == 0
    assert "1 (rounded, +0 %)" in capsys.readouterr().out


@pytest.mark.parametrize("text, usd", [("$2B", 2e9), ("$1,200,000", 1.2e6), ("$40M", 4e7), ("1.5 kUSD", 1500.0)])
def test_money_forms_planners_write(text, usd):
    from simulator import units

    assert units.parse(text, "money") == usd


def test_compare_says_why_a_case_has_no_days(capsys):
    assert main(["compare", W8, "--vary", "cluster.reliability.gpu_failures_per_gpu_hour=x1,x10000",
                 "--fast", "--replicas", "2"]) == 0
    out = capsys.readouterr().out
    assert "no days to train (–):" in out and "gpu_failures_per_gpu_hour=x10000: does not finish" in out


def test_report_charts_have_page_unique_ids(tmp_path):
    import collections
    import re

    page = tmp_path / "r.html"
    assert main(["run", W8, "--fast", "--replicas", "4", "--report", str(page)]) == 0
    text = page.read_text()
    ids = collections.Counter(re.findall(r'\bid="([^"]+)"', text))
    assert ids and max(ids.values()) == 1                    # 101 duplicates before
    refs = re.findall(r'(?:url\(#|href="#)([^")]+)', text)
    assert refs and all(r in ids for r in refs)


def test_a_job_shorter_than_a_repair_is_not_judged_by_the_steady_state_spare_pool(capsys):
    """A 4-minute job on a cluster whose steady state keeps ~77 nodes in repair (1 day each) against
    16 spares was 'does not finish' up front; it starts with none in repair and sees ~0.2."""
    r = "cluster.reliability"
    argv = ["run", W8, "--fast", "--replicas", "4", "--set", f"{r}.host_failures_per_node_hour=0.05",
            "--set", f"{r}.idle_nodes_as_spares=false"]
    assert main([*argv, "--set", "training.train_tokens=1B"]) == 0
    out = capsys.readouterr().out
    assert "does not finish" not in out and "3.69 min ideal" in out      # minutes, not "0.0 d"
    assert main(argv) == 0                                                 # the 38-day run still cannot
    assert "does not finish" in capsys.readouterr().out


@pytest.mark.parametrize("freq", ["[1, 0, 0, 0, 0, 0, 0, 0]", "20"])
def test_first_dense_layers_that_cover_every_moe_layer_are_refused(capsys, freq):
    """Ran silently as the dense model (155 M parameters, the base's step)."""
    err = _err(capsys, ["run", str(WORKLOADS / "mixtral-8x7b.yaml"), "--fast", "--set", "model.num_layers=8",
                        "--set", f"model.moe.moe_layer_freq={freq}", "--set", "model.moe.first_k_dense_replace=1"])
    assert "model.moe.first_k_dense_replace" in err and "no MoE layer after them" in err


def test_the_default_prune_width_on_a_tiny_model_is_a_missing_lever_not_an_error(capsys):
    """A valid workload narrower than a 128-channel block exited 2 blaming --prune-width, which the
    user never passed."""
    tiny = ["--set", "model.hidden_size=64", "--set", "model.ffn_hidden_size=64", "--set", "model.num_attention_heads=1",
            "--set", "model.num_query_groups=1", "--set", "parallelism.tensor_model_parallel_size=1"]
    assert main(["levers", W8, *tiny, "--only", "pruned", "--fast", "--replicas", "2"]) == 0
    assert "nothing to prune" in capsys.readouterr().out


def test_yaml_merge_keys_read_and_own_keys_still_must_be_distinct():
    """`<<: *base` failed with "could not determine a constructor for the tag ...merge"."""
    assert safe_load("base: &b {x: 1, y: 2}\nc:\n  <<: *b\n  y: 3\n")["c"] == {"x": 1, "y": 3}
    assert safe_load("b: {<<: [{p: 1}, {q: 2}], r: 3}")["b"] == {"p": 1, "q": 2, "r": 3}
    with pytest.raises(Exception, match="duplicate key"):
        safe_load("c: {<<: {x: 1}, x: 2, x: 3}")


def test_a_missing_carbon_profile_is_an_error_before_any_work(capsys, tmp_path):
    """Was read only after the simulation: a run that did not finish never reported it, and a
    search marked every layout invalid."""
    cluster = tmp_path / "c.yaml"
    cluster.write_text((ROOT / "topologies" / "dgx-h100-superpod.yaml").read_text()
                       .replace("prices:", "prices:\n  carbon_intensity_profile: nope.csv", 1))
    assert "carbon_intensity_profile: nope.csv" in cluster.read_text()
    err = _err(capsys, ["run", W8, "--fast", "--replicas", "2", "--cluster", str(cluster)])
    assert "prices.carbon_intensity_profile" in err and "nope.csv" in err


def test_a_pcie_scale_up_runs_at_the_host_link_and_has_no_nvls(capsys):
    """kind: pcie without a bandwidth took the GPU's 450 GB/s NVLink figure; nvls: true was accepted."""
    base = ["run", W8, "--fast", "--replicas", "2", "--json"]
    assert main(base) == 0
    nvswitch = json.loads(capsys.readouterr().out)["step_time_s"]
    assert main([*base, "--set", "cluster.node.nvlink={kind: pcie}"]) == 0
    assert json.loads(capsys.readouterr().out)["step_time_s"] > nvswitch
    err = _err(capsys, ["run", W8, "--fast", "--set", "cluster.node.nvlink={kind: pcie, nvls: true}"])
    assert "nvls: true needs kind: nvswitch" in err


def test_a_schedule_whose_phases_all_differ_from_the_top_level_says_so(capsys):
    assert main(["run", W8, "--fast", "--replicas", "2", "--set",
                 "phases=[{name: longer, seq_length: 16384, global_batch_size: 256}]"]) == 0
    assert "no training phase runs the top level as written" in capsys.readouterr().out
    assert main(["run", str(WORKLOADS / "llama3-405b.yaml"), "--fast", "--replicas", "2"]) == 0
    assert "no training phase runs the top level" not in capsys.readouterr().out


@pytest.mark.parametrize("peaks, tdp, want", [("{}", "700 W", "needs a bf16 or fp16 peak"),
                                              ("{bf16: 1 PFLOP/s}", "0 W", "tdp must be above 0 W")])
def test_inline_gpus_need_a_training_peak_and_a_power(capsys, peaks, tdp, want):
    gpu = (f"cluster.gpu={{name: g, peak_flops: {peaks}, hbm_capacity: 80 GiB, hbm_bandwidth: 3.35 TB/s, "
           f"tdp: {tdp}, idle_power: 0 W}}")
    assert want in _err(capsys, ["run", W8, "--fast", "--set", gpu])


def test_search_says_why_no_pipeline_split_fits_a_small_model(capsys):
    err = _err(capsys, ["search", W8, "--gpus", "7", "--set", "model.num_layers=8", "--fast", "--replicas", "2"],
               code=3)
    assert "leave -" not in err and "more than the model has" in err


def test_fp16_on_a_tpu_is_refused_and_not_listed(capsys):
    """The bf16 peak stood in for fp16 on TPU v5p, and the error listed fp16 among its precisions."""
    err = _err(capsys, ["run", W8, "--fast", "--cluster", str(ROOT / "topologies" / "tpu-v5p.yaml"),
                        "--set", "training.precision=fp16"])
    assert "has no FP16" in err and err.rstrip().endswith("TPU v5p has: bf16")
