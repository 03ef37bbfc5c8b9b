"""Bad input through the real CLI: every failure is one clear message, the right exit code, no traceback.

Each case runs ``simulator.cli.main(argv)`` in-process (a few also ``python -m simulator``) and
checks: the exit code (2 malformed, 3 infeasible), that stderr names where the bad value came from
(the file, or the ``--set``/``--gpus`` that wrote it), the key path, something about the offending
value or what was expected, and that no Python traceback leaks out.

Each case once was, or could easily become, a bug: the test asserts the correct behaviour.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from simulator.cli import main

REPO = Path(__file__).resolve().parents[1]
WORKLOADS = REPO / "workloads"
TOPOLOGIES = REPO / "topologies"


# --------------------------------------------------------------------------- helpers

def _walk(data: dict, path: str) -> tuple[dict, str]:
    *parents, last = path.split(".")
    for part in parents:
        data = data.setdefault(part, {})
    return data, last


def set_key(data: dict, path: str, value: object) -> None:
    node, last = _walk(data, path)
    node[last] = value


def del_key(data: dict, path: str) -> None:
    node, last = _walk(data, path)
    del node[last]


def rename_key(data: dict, path: str, new_name: str) -> None:
    node, last = _walk(data, path)
    node[new_name] = node.pop(last)


def load_workload(name: str) -> dict:
    """A bundled workload as a mapping, its `cluster:` made absolute so a copy can live anywhere."""
    data = yaml.safe_load((WORKLOADS / name).read_text())
    data["cluster"] = str((WORKLOADS / data["cluster"]).resolve())
    return data


def write_yaml(path: Path, data: object) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def workload_file(tmp_path: Path, name: str = "llama3-8b.yaml", edit=None) -> Path:
    data = load_workload(name)
    if edit:
        edit(data)
    return write_yaml(tmp_path / f"wl-{name}", data)


def cluster_file(tmp_path: Path, edit, name: str = "dgx-h100-superpod.yaml") -> Path:
    data = yaml.safe_load((TOPOLOGIES / name).read_text())
    edit(data)
    return write_yaml(tmp_path / f"cl-{name}", data)


def run_cli(capsys, argv: list[str]) -> tuple[int, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert out == "", f"nothing should go to stdout on failure, got {out!r}"
    return code, err


def check(code: int, err: str, expected_code: int, *needles: str) -> None:
    assert "Traceback" not in err, err
    assert code == expected_code, f"exit code {code}, expected {expected_code}; stderr:\n{err}"
    prefix = "infeasible: " if expected_code == 3 else "error: "
    assert any(line.startswith(prefix) for line in err.splitlines()), err
    for needle in needles:
        assert needle in err, f"{needle!r} missing from stderr:\n{err}"


# --------------------------------------------------------------------------- workload file edits

def _s(path, value):
    return lambda d: set_key(d, path, value)


def _d(path):
    return lambda d: del_key(d, path)


def _r(path, new):
    return lambda d: rename_key(d, path, new)


def _all(*edits):
    def edit(d):
        for e in edits:
            e(d)
    return edit


# id, bundled workload, edit, extra argv, needles (besides the file's path)
WORKLOAD_CASES = [
    ("misspelt-key", "llama3-8b.yaml",
     _r("parallelism.tensor_model_parallel_size", "tensor_model_paralel_size"), [],
     ["parallelism.tensor_model_paralel_size", "unknown key", "did you mean tensor_model_parallel_size"]),
    ("unknown-top-level-key", "llama3-8b.yaml", _s("optimiser", {"kind": "adamw"}), [],
     ["optimiser", "unknown key", "expected one of", "training", "parallelism"]),
    ("misspelt-top-level-section", "llama3-8b.yaml", _r("parallelism", "paralelism"), [],
     ["paralelism", "unknown key", "did you mean parallelism"]),
    ("missing-required-key", "llama3-8b.yaml", _d("model.hidden_size"), [],
     ["model.hidden_size", "required key is missing"]),
    ("missing-required-section", "llama3-8b.yaml", _d("training"), [],
     ["training", "required key is missing"]),
    ("string-for-int", "llama3-8b.yaml", _s("model.num_layers", "thirty-two"), [],
     ["model.num_layers", "valid integer", "'thirty-two'"]),
    ("quoted-number-for-int", "llama3-8b.yaml", _s("model.num_layers", "32"), [],
     ["model.num_layers", "valid integer", "'32'"]),
    ("float-for-int", "llama3-8b.yaml", _s("model.num_layers", 32.5), [],
     ["model.num_layers", "valid integer", "32.5"]),
    ("bool-for-int", "llama3-8b.yaml", _s("parallelism.micro_batch_size", True), [],
     ["parallelism.micro_batch_size", "valid integer", "True"]),
    ("negative-int", "llama3-8b.yaml", _s("training.global_batch_size", -4), [],
     ["training.global_batch_size", "greater than 0", "-4"]),
    ("zero-int", "llama3-8b.yaml", _s("parallelism.tensor_model_parallel_size", 0), [],
     ["parallelism.tensor_model_parallel_size", "greater than 0", "got 0"]),
    ("zero-count-with-suffix", "llama3-8b.yaml", _s("training.train_tokens", "0T"), [],
     ["training.train_tokens", "greater than 0", "'0T'"]),
    ("bad-enum", "llama3-8b.yaml", _s("training.precision", "fp4"), [],
     ["training.precision", "'fp8_mx', 'nvfp4' or 'mxfp4'", "'fp4'"]),
    ("list-for-section", "llama3-8b.yaml", _s("model", [1, 2]), [],
     ["model", "a section (a mapping of keys)", "[1, 2]"]),
    ("bare-number-for-duration", "llama3-8b.yaml", _s("checkpoint.interval", 3600), [],
     ["checkpoint.interval", "bare number", "1 h", "3600"]),
    ("tp-not-dividing-heads", "llama3-8b.yaml", _s("parallelism.tensor_model_parallel_size", 3), [],
     ["parallelism.tensor_model_parallel_size", "num_attention_heads=32", "got 3", "divisor of 32"]),
    ("tp-not-dividing-query-groups", "llama3-8b.yaml", _s("parallelism.tensor_model_parallel_size", 16), [],
     ["parallelism.tensor_model_parallel_size", "num_query_groups=8", "got 16", "divisor of 8"]),
    ("query-groups-not-dividing-heads", "llama3-8b.yaml",
     _all(_s("model.num_query_groups", 5), _s("parallelism.tensor_model_parallel_size", 1)), [],
     ["model.num_query_groups", "num_attention_heads=32", "got 5"]),
    ("pp-not-dividing-layers", "llama3-8b.yaml", _s("parallelism.pipeline_model_parallel_size", 3),
     ["--gpus", "96"],
     ["parallelism.pipeline_model_parallel_size", "num_layers=32", "got 3", "divisor of 32"]),
    ("global-batch-not-divisible", "llama3-8b.yaml", _s("training.global_batch_size", 100), [],
     ["training.global_batch_size", "micro_batch_size x DP = 1 x 256", "got 100", "multiple of 256",
      "or num_gpus 200 (DP dividing"]),
    ("num-gpus-not-multiple-of-model-parallel", "llama3-8b.yaml", _s("num_gpus", 511), [],
     ["num_gpus", "TP x PP x CP", "got 511", "multiple of 2"]),
    ("cp-not-dividing-sequence", "llama3-8b.yaml", _s("parallelism.context_parallel_size", 3),
     ["--gpus", "1536"],
     ["parallelism.context_parallel_size", "seq_length=8192", "got 3"]),
    ("ep-not-dividing-experts", "mixtral-8x7b.yaml", _s("parallelism.expert_model_parallel_size", 3), [],
     ["parallelism.expert_model_parallel_size", "num_experts=8", "got 3", "divisor of 8"]),
    ("ep-on-dense-model", "llama3-8b.yaml", _s("parallelism.expert_model_parallel_size", 2), [],
     ["parallelism.expert_model_parallel_size", "MoE", "got 2", "1 for a dense model"]),
    ("topk-above-num-experts", "mixtral-8x7b.yaml", _s("model.moe.moe_router_topk", 9), [],
     ["model.moe.moe_router_topk", "num_experts=8", "got 9"]),
    ("train-tokens-and-iters", "llama3-8b.yaml", _s("training.train_iters", 1000), [],
     ["training.train_iters", "train_tokens or train_iters, not both", "1000"]),
    ("zero-stage-vs-distributed-optimizer", "llama3-8b.yaml", _s("parallelism.zero_stage", 3), [],
     ["parallelism.zero_stage", "distributed_optimizer", "got 3"]),
    ("uneven-stages-without-pp", "llama3-8b.yaml", _s("parallelism.decoder_first_pipeline_num_layers", 3), [],
     ["parallelism.decoder_first_pipeline_num_layers", "pipeline parallelism", "got 3"]),
    ("interleaved-without-virtual-stages", "llama3-8b.yaml",
     _s("parallelism.pipeline_schedule", "interleaved_1f1b"), [],
     ["parallelism.pipeline_schedule", "virtual_pipeline_model_parallel_size", "'interleaved_1f1b'"]),
    ("cluster-file-missing", "llama3-8b.yaml", _s("cluster", "no-such-cluster.yaml"), [],
     ["cluster", "cluster file not found", "'no-such-cluster.yaml'"]),
]


@pytest.mark.parametrize("base, edit, extra, needles",
                         [c[1:] for c in WORKLOAD_CASES], ids=[c[0] for c in WORKLOAD_CASES])
def test_bad_workload_file(tmp_path, capsys, base, edit, extra, needles):
    wl = workload_file(tmp_path, base, edit)
    code, err = run_cli(capsys, ["run", wl, *extra])
    check(code, err, 2, str(wl), *needles)


# --------------------------------------------------------------------------- cluster file edits

CLUSTER_CASES = [
    ("bad-unit-lowercase-bits", _s("node.nic_bandwidth", "400 gb/s"),
     ["node.nic_bandwidth", "unknown unit 'gb/s'", "'400 Gb/s'", "'400 gb/s'"]),
    ("bare-number-needs-unit", _s("node.nic_bandwidth", 400),
     ["node.nic_bandwidth", "bare number", "'400 Gb/s'", "got 400"]),
    ("unreadable-quantity", _s("node.nic_bandwidth", "fast"),
     ["node.nic_bandwidth", "cannot read 'fast'", "Gb/s"]),
    ("negative-quantity", _s("node.nic_bandwidth", "-400 Gb/s"),
     ["node.nic_bandwidth", "greater than 0", "'-400 Gb/s'"]),
    ("unknown-gpu-close", _s("gpu", "h100-sxn"),
     ["gpu", "unknown GPU", "did you mean h100-sxm", "'h100-sxn'"]),
    ("unknown-gpu-far", _s("gpu", "tpu-v5"),
     ["gpu", "unknown GPU", "'tpu-v5'", "h100-sxm"]),
    ("misspelt-cluster-key", _r("fabric.oversubscription", "oversubscripton"),
     ["fabric.oversubscripton", "unknown key", "did you mean oversubscription"]),
    ("missing-cluster-key", _d("num_nodes"), ["num_nodes", "required key is missing"]),
    ("oversubscription-below-one", _s("fabric.oversubscription", 0.5),
     ["fabric.oversubscription", "greater than or equal to 1", "0.5"]),
    ("bad-fabric-kind", _s("fabric.kind", "torus"),
     ["fabric.kind", "'torus3d'", "'torus'"]),
    ("inline-gpu-bare-flops", _s("gpu", {"name": "x", "peak_flops": {"bf16": 100}, "hbm_capacity": "80 GiB",
                                        "hbm_bandwidth": "3 TB/s", "tdp": "700 W", "idle_power": "70 W"}),
     ["gpu.peak_flops.bf16", "bare number", "TFLOP/s"]),
]


@pytest.mark.parametrize("edit, needles", [c[1:] for c in CLUSTER_CASES], ids=[c[0] for c in CLUSTER_CASES])
def test_bad_cluster_file(tmp_path, capsys, edit, needles):
    cl = cluster_file(tmp_path, edit)
    wl = workload_file(tmp_path, edit=_s("cluster", str(cl)))
    code, err = run_cli(capsys, ["run", wl])
    check(code, err, 2, str(cl), *needles)


def test_bad_cluster_via_cluster_flag(tmp_path, capsys):
    cl = cluster_file(tmp_path, _s("num_nodes", -1))
    code, err = run_cli(capsys, ["run", workload_file(tmp_path), "--cluster", cl])
    check(code, err, 2, str(cl), "num_nodes", "greater than 0", "-1")


# --------------------------------------------------------------------------- unreadable files

FILE_CASES = [
    ("invalid-yaml-syntax", "name: x\nmodel: [1, 2\n", ["not valid YAML", "line 3"]),
    ("invalid-yaml-indent", "name: x\n  model: 1\n", ["not valid YAML", "line 2", "mapping values"]),
    ("yaml-tab", "name: x\n\tmodel: 1\n", ["not valid YAML", "'\\t'"]),
    ("two-documents", "name: x\n---\nname: y\n", ["not valid YAML", "another document"]),
    ("empty-file", "", ["file is empty", "YAML mapping"]),
    ("comments-only", "# nothing here\n", ["file is empty", "YAML mapping"]),
    ("top-level-list", "- name: x\n- model: y\n", ["top level must be a mapping", "'list'"]),
    ("top-level-scalar", "just words\n", ["top level must be a mapping", "'str'"]),
]


@pytest.mark.parametrize("text, needles", [c[1:] for c in FILE_CASES], ids=[c[0] for c in FILE_CASES])
def test_unreadable_workload_file(tmp_path, capsys, text, needles):
    wl = tmp_path / "bad.yaml"
    wl.write_text(text)
    code, err = run_cli(capsys, ["run", wl])
    check(code, err, 2, str(wl), *needles)


def test_binary_file(tmp_path, capsys):
    wl = tmp_path / "binary.yaml"
    wl.write_bytes(b"\xff\xfe\x00\x81name: x\n")
    code, err = run_cli(capsys, ["run", wl])
    check(code, err, 2, str(wl), "not a text file")


def test_file_not_found(tmp_path, capsys):
    wl = tmp_path / "missing.yaml"
    code, err = run_cli(capsys, ["run", wl])
    check(code, err, 2, str(wl), "file not found")


def test_directory_instead_of_file(tmp_path, capsys):
    code, err = run_cli(capsys, ["run", tmp_path])
    check(code, err, 2, str(tmp_path), "is a directory")


def test_cluster_flag_file_not_found(tmp_path, capsys):
    cl = tmp_path / "nope-cluster.yaml"
    code, err = run_cli(capsys, ["run", workload_file(tmp_path), "--cluster", cl])
    check(code, err, 2, str(cl), "file not found")


# --------------------------------------------------------------------------- command-line values

# argv after `run WORKLOAD`, needles (the --set/--gpus text is part of them)
CLI_CASES = [
    ("set-without-equals", ["--set", "parallelism.micro_batch_size"],
     ["--set", "key.path=value", "'parallelism.micro_batch_size'"]),
    ("set-empty-key", ["--set", "=3"], ["--set", "empty key", "'=3'"]),
    ("set-unknown-key", ["--set", "parallelism.micro_bach_size=2"],
     ["--set parallelism.micro_bach_size=2", "parallelism.micro_bach_size", "unknown key",
      "did you mean micro_batch_size"]),
    ("set-unknown-top-level-key", ["--set", "foo=2"],
     ["--set foo=2", "foo", "unknown key", "expected one of"]),
    ("set-below-a-scalar", ["--set", "parallelism.tensor_model_parallel_size.x=1"],
     ["--set parallelism.tensor_model_parallel_size.x=1", "parallelism.tensor_model_parallel_size",
      "not a section"]),
    ("set-wrong-type", ["--set", "model.hidden_size=big"],
     ["--set model.hidden_size=big", "model.hidden_size", "valid integer", "'big'"]),
    ("set-layout-check", ["--set", "parallelism.tensor_model_parallel_size=3"],
     ["--set parallelism.tensor_model_parallel_size=3", "parallelism.tensor_model_parallel_size",
      "num_attention_heads=32", "got 3"]),
    ("set-data-parallel-disagrees", ["--set", "parallelism.data_parallel_size=128"],
     ["--set parallelism.data_parallel_size=128", "parallelism.data_parallel_size", "got 128",
      "256 or 'auto'"]),
    ("set-cluster-oversubscription-below-one", ["--set", "cluster.fabric.oversubscription=0.5"],
     ["--set cluster.fabric.oversubscription=0.5", "fabric.oversubscription", "greater than or equal to 1",
      "0.5"]),
    ("set-cluster-unknown-key", ["--set", "cluster.fabric.oversubscriptoin=2"],
     ["--set cluster.fabric.oversubscriptoin=2", "fabric.oversubscriptoin", "unknown key",
      "did you mean oversubscription"]),
    ("set-cluster-bare-bandwidth", ["--set", "cluster.node.nic_bandwidth=400"],
     ["--set cluster.node.nic_bandwidth=400", "node.nic_bandwidth", "bare number", "'400 Gb/s'"]),
    ("set-cluster-unknown-gpu", ["--set", "cluster.gpu=h100"],
     ["--set cluster.gpu=h100", "gpu", "unknown GPU", "'h100'", "h100-sxm"]),
    ("set-cluster-path-missing", ["--set", "cluster=nope.yaml"],
     ["--set cluster=nope.yaml", "cluster", "cluster file not found", "'nope.yaml'"]),
    ("gpus-more-than-cluster", ["--gpus", "32768"],
     ["--gpus 32768", "num_gpus", "needs 32768 GPUs", "cluster has 16384", "at most 16384"]),
    ("gpus-not-multiple-of-model-parallel", ["--gpus", "511"],
     ["--gpus 511", "num_gpus", "got 511", "multiple of 2"]),
    ("gpus-not-dividing-the-batch", ["--gpus", "500"],
     ["--gpus 500", "training.global_batch_size", "multiple of 250", "num_gpus 256 or 512"]),
    ("gpus-zero", ["--gpus", "0"], ["--gpus", "positive integer", "'0'"]),
    ("gpus-not-a-number", ["--gpus", "abc"], ["--gpus", "positive integer", "'abc'"]),
    ("unknown-flag", ["--bogus"], ["command line", "unrecognized arguments", "--bogus"]),
]


@pytest.mark.parametrize("extra, needles", [c[1:] for c in CLI_CASES], ids=[c[0] for c in CLI_CASES])
def test_bad_command_line_value(tmp_path, capsys, extra, needles):
    code, err = run_cli(capsys, ["run", workload_file(tmp_path), *extra])
    check(code, err, 2, *needles)


def test_fp8_on_a100(tmp_path, capsys):
    wl = workload_file(tmp_path, "gpt3-175b.yaml")
    code, err = run_cli(capsys, ["run", wl, "--set", "training.precision=fp8"])
    check(code, err, 2, "--set training.precision=fp8", "training.precision", "A100", "FP8", "'fp8'",
          "has: bf16, fp16")


def test_fp8_on_a100_from_file(tmp_path, capsys):
    wl = workload_file(tmp_path, "gpt3-175b.yaml", _s("training.precision", "fp8"))
    code, err = run_cli(capsys, ["run", wl])
    check(code, err, 2, str(wl), "training.precision", "FP8", "'fp8'")


def test_unknown_subcommand(capsys):
    code, err = run_cli(capsys, ["runn", str(WORKLOADS / "llama3-8b.yaml")])
    check(code, err, 2, "command line", "invalid choice", "'runn'", "run")


def test_missing_workload_argument(capsys):
    code, err = run_cli(capsys, ["run"])
    check(code, err, 2, "command line", "required", "workload")


# --------------------------------------------------------------------------- infeasible (exit 3)

OOM = ["--set", "parallelism.tensor_model_parallel_size=1", "--set", "parallelism.pipeline_model_parallel_size=1",
       "--set", "parallelism.decoder_first_pipeline_num_layers=null",
       "--set", "parallelism.decoder_last_pipeline_num_layers=null",
       "--set", "parallelism.virtual_pipeline_model_parallel_size=null", "--gpus", "64",
       "--set", "parallelism.pipeline_model_parallel_layout=null",
       "--set", "phases=null"]      # the top level alone: its phases run on 8,192 GPUs


def test_model_too_large_for_memory(tmp_path, capsys):
    wl = workload_file(tmp_path, "llama3-405b.yaml")
    code, err = run_cli(capsys, ["run", wl, *OOM])
    check(code, err, 3, "llama3-405b", "TP1 PP1 DP64", "GiB per GPU", "79.6 GiB",
          "weights", "gradients", "optimizer", "activations")
    assert len(err.strip().splitlines()) == 1, err


def test_model_too_large_names_the_file(tmp_path, capsys):
    wl = workload_file(tmp_path, "llama3-405b.yaml")
    code, err = run_cli(capsys, ["run", wl, *OOM])
    check(code, err, 3, str(wl))


# --------------------------------------------------------------------------- through `python -m simulator`

def _subprocess(argv: list) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "simulator", *map(str, argv)],
                          capture_output=True, text=True, timeout=60)


def test_subprocess_file_not_found(tmp_path):
    wl = tmp_path / "missing.yaml"
    proc = _subprocess(["run", wl])
    check(proc.returncode, proc.stderr, 2, str(wl), "file not found")
    assert proc.stdout == ""


def test_subprocess_bad_set_and_misspelt_key(tmp_path):
    wl = workload_file(tmp_path, edit=_r("parallelism.tensor_model_parallel_size", "tensor_model_paralel_size"))
    proc = _subprocess(["run", wl])
    check(proc.returncode, proc.stderr, 2, str(wl), "parallelism.tensor_model_paralel_size",
          "did you mean tensor_model_parallel_size")
    proc = _subprocess(["run", workload_file(tmp_path), "--set", "cluster.fabric.oversubscription=0.5"])
    check(proc.returncode, proc.stderr, 2, "--set cluster.fabric.oversubscription=0.5",
          "fabric.oversubscription", "0.5")


def test_subprocess_infeasible(tmp_path):
    proc = _subprocess(["run", workload_file(tmp_path, "llama3-405b.yaml"), *OOM])
    check(proc.returncode, proc.stderr, 3, "llama3-405b", "GiB per GPU", "weights", "activations")
    assert proc.stdout == ""


# --------------------------------------------------------------------------- bugs found and fixed

def test_infinite_oversubscription(tmp_path, capsys):
    code, err = run_cli(capsys, ["run", workload_file(tmp_path), "--set", "cluster.fabric.oversubscription=.inf"])
    check(code, err, 2, "--set cluster.fabric.oversubscription=.inf", "fabric.oversubscription", "inf")


@pytest.mark.parametrize("value", [".inf", "1e400"])
def test_infinite_train_tokens(tmp_path, capsys, value):
    code, err = run_cli(capsys, ["run", workload_file(tmp_path), "--set", f"training.train_tokens={value}"])
    check(code, err, 2, f"--set training.train_tokens={value}", "training.train_tokens")


def test_infinite_steps_factor(tmp_path, capsys):
    wl = workload_file(tmp_path, edit=_s("training.optimizer.steps_factor", float("inf")))
    code, err = run_cli(capsys, ["run", wl])
    check(code, err, 2, str(wl), "training.optimizer.steps_factor")


def test_gpu_wrong_type_key_path(tmp_path, capsys):
    cl = cluster_file(tmp_path, _s("gpu", 5))
    code, err = run_cli(capsys, ["run", workload_file(tmp_path, edit=_s("cluster", str(cl)))])
    check(code, err, 2, str(cl), ": gpu: ", "got 5")
    assert "gpu.str" not in err and "gpu.dict" not in err, err


def test_first_stage_larger_than_model(tmp_path, capsys):
    wl = workload_file(tmp_path, edit=_all(_s("parallelism.pipeline_model_parallel_size", 2),
                                           _s("parallelism.decoder_first_pipeline_num_layers", 40)))
    code, err = run_cli(capsys, ["run", wl])
    check(code, err, 2, str(wl), "parallelism.decoder_first_pipeline_num_layers", "40", "num_layers=32")
    assert "remaining -8" not in err, err


def test_missing_key_in_section_created_by_set(tmp_path, capsys):
    wl = workload_file(tmp_path)
    code, err = run_cli(capsys, ["run", wl, "--set", "model.moe.moe_router_topk=4"])
    check(code, err, 2, "--set model.moe.moe_router_topk=4", "model.moe.num_experts", "required key is missing")
    assert str(wl) not in err, err


def test_duplicate_key(tmp_path, capsys):
    text = (WORKLOADS / "llama3-8b.yaml").read_text()
    text = text.replace("cluster: ../topologies/", f"cluster: {TOPOLOGIES}/")
    text = text.replace("  tensor_model_parallel_size: 2\n",
                        "  tensor_model_parallel_size: 8\n  tensor_model_parallel_size: 2\n")
    wl = tmp_path / "dup.yaml"
    wl.write_text(text)
    code = main(["run", str(wl)])
    err = capsys.readouterr().err
    check(code, err, 2, str(wl), "tensor_model_parallel_size", "duplicate")


def test_set_indexes_a_phase_by_position_and_refuses_an_index_past_the_end():
    from simulator.config.overrides import apply, parse_override
    from simulator.errors import ConfigError
    raw = {"phases": [{"name": "a"}, {"name": "b", "num_gpus": 8}]}
    for text in ("phases.1.num_gpus=16", "phases[1].num_gpus=16"):
        out = apply(raw, [parse_override(text)], "w.yaml")
        assert out["phases"][1] == {"name": "b", "num_gpus": 16} and out["phases"][0] == {"name": "a"}
    assert raw["phases"][1]["num_gpus"] == 8                      # the input is not edited
    assert apply(raw, [parse_override("phases.0=null")], "w.yaml")["phases"][0] is None
    for text in ("phases.2.num_gpus=16", "phases.first.num_gpus=16"):
        with pytest.raises(ConfigError, match="is a list of 2") as exc:
            apply(raw, [parse_override(text)], "w.yaml")
        assert "from 0 to 1" in str(exc.value) and text in str(exc.value)


def test_set_on_a_phase_key_names_the_override_and_the_phase(capsys):
    code, err = run_cli(capsys, ["run", WORKLOADS / "bloom-176b.yaml", "--fast", "--set", "phases.5.num_gpus=-1"])
    assert code == 2 and "--set phases.5.num_gpus=-1" in err and "phases[5].num_gpus" in err


def test_run_plot_refuses_a_file_name_before_any_work(capsys, tmp_path):
    """`run --plot` writes four plots into a folder: a name like x.png would become a folder "x.png"."""
    target = tmp_path / "new" / "run.png"
    code, err = run_cli(capsys, ["run", WORKLOADS / "llama3-8b.yaml", "--fast", "--plot", target])
    check(code, err, 2, "--plot", "run.png", "a folder name")
    assert not (tmp_path / "new").exists()


def test_flash2_without_flash_attention(tmp_path, capsys):
    code, err = run_cli(capsys, ["run", workload_file(tmp_path), "--set", "training.use_flash_attn=false",
                                 "--set", "training.attention_kernel=flash2"])
    check(code, err, 2, "training.attention_kernel", "'flash2'", "use_flash_attn is false")


def test_flash2_on_a_tpu(tmp_path, capsys):
    code, err = run_cli(capsys, ["run", workload_file(tmp_path), "--set", "cluster.gpu=tpu-v5p",
                                 "--set", "training.attention_kernel=flash2"])
    check(code, err, 2, "training.attention_kernel", "'flash2'", "google", "fused (the default)")


def test_misspelt_attention_kernel(tmp_path, capsys):
    code, err = run_cli(capsys, ["run", workload_file(tmp_path), "--set", "training.attention_kernel=flash3"])
    check(code, err, 2, "training.attention_kernel", "'flash3'", "fused", "flash2")


def test_every_second_matmul_needs_op_level_recompute(tmp_path, capsys):
    code, err = run_cli(capsys, ["run", workload_file(tmp_path), "--set", "parallelism.recompute_matmuls=every_second"])
    check(code, err, 2, "parallelism.recompute_matmuls", "'every_second'", "recompute_granularity: selective_op")


def test_every_second_matmul_refuses_an_moe_model(tmp_path, capsys):
    code, err = run_cli(capsys, ["run", workload_file(tmp_path, "mixtral-8x7b.yaml"),
                                 "--set", "parallelism.recompute_granularity=selective_op",
                                 "--set", "parallelism.recompute_matmuls=every_second"])
    check(code, err, 2, "parallelism.recompute_matmuls", "MoE layers", "none for this model")


SELECTIVE = ["--set", "parallelism.recompute_granularity=selective"]


@pytest.mark.parametrize("workload, sets, needles", [
    ("llama3-8b.yaml", ["--set", "parallelism.recompute_modules=[layernorm]"],
     ["parallelism.recompute_granularity: is none, but recompute_modules ['layernorm']",
      "--set parallelism.recompute_modules=null"]),
    ("llama3-8b.yaml", SELECTIVE + ["--set", "parallelism.recompute_modules=[]"],
     ["parallelism.recompute_modules", "is empty", "at least one module"]),
    ("llama3-8b.yaml", SELECTIVE + ["--set", "parallelism.recompute_modules=[mlp,mlp]"],
     ["parallelism.recompute_modules", "mlp more than once"]),
    ("llama3-8b.yaml", SELECTIVE + ["--set", "parallelism.recompute_modules=[core_atn]"],
     ["parallelism.recompute_modules", "'core_atn'", "core_attn"]),
    ("llama3-8b.yaml", SELECTIVE + ["--set", "parallelism.recompute_modules=[mla_up_proj]"],
     ["parallelism.recompute_modules", "no multi-head latent attention", "core_attn, layernorm, mlp"]),
    ("llama3-8b.yaml", SELECTIVE + ["--set", "parallelism.recompute_modules=[moe_act]"],
     ["parallelism.recompute_modules", "moe_act has nothing to recompute", "no MoE layers"]),
    ("qwen3-30b-a3b.yaml", SELECTIVE + ["--set", "parallelism.recompute_modules=[shared_experts]"],
     ["parallelism.recompute_modules", "no shared experts"]),
    ("qwen3-30b-a3b.yaml", SELECTIVE + ["--set", "parallelism.recompute_modules=[mlp]"],
     ["parallelism.recompute_modules", "every layer is MoE", "moe_act"]),
])
def test_recompute_modules_errors(tmp_path, capsys, workload, sets, needles):
    """Megatron-Core's recompute_modules: selective only, each module once, a known name, and a part
    the model has (exit 2 naming the key, the value and what would do)."""
    code, err = run_cli(capsys, ["run", workload_file(tmp_path, workload), *sets])
    check(code, err, 2, *needles)


# hostile inputs a fuzzing pass found (s27): each was a traceback, a silent acceptance or a misleading
# message before
@pytest.mark.parametrize("workload, argv, needles", [
    ("llama3-8b.yaml", ["--set", "cluster.fabric.oversubscription=1e16"],
     ["fabric.oversubscription", "switch_radix=64", "at most 63"]),
    ("llama3-8b.yaml", ["--set", "cluster.fabric.tier_oversubscription=[1,1e9]"],
     ["fabric.tier_oversubscription.1", "at most 63"]),
    ("llama3-8b.yaml", ["--set", "parallelism.pipeline_model_parallel_size=2",
                        "--set", "parallelism.pipeline_model_parallel_layout=Et*999999999999L"],
     ["pipeline_model_parallel_layout", "more than a million symbols"]),
    ("llama3-8b.yaml", ["--set", "parallelism.pipeline_model_parallel_size=2",
                        "--set", "parallelism.pipeline_model_parallel_layout=E(t*100000)*100000L"],
     ["more than a million symbols"]),
    ("llama3-8b.yaml", ["--set", "parallelism.pipeline_model_parallel_size=2",
                        "--set", "parallelism.pipeline_model_parallel_layout=Et*" + "9" * 5000 + "L"],
     ["more than a million symbols"]),
    ("llama3-8b.yaml", ["--set", "parallelism.pipeline_model_parallel_layout=Et*16|t*16L"],
     ["parallelism.pipeline_model_parallel_layout", "places 2 pipeline stages",
      "pipeline_model_parallel_size is 1"]),
    ("llama3-8b.yaml", ["--set", "parallelism.pipeline_model_parallel_size=2",
                        "--set", "parallelism.pipeline_model_parallel_layout=|Et*32L"],
     ["the embedding (E), in the first stage"]),
    ("llama3-8b.yaml", ["--set", "training.cuda_graph_scope=[attn]"],
     ["training.cuda_graph_scope", "cuda_graph_impl none it would be ignored"]),
    ("llama3-8b.yaml", ["--set", "training.cuda_graph_impl=transformer_engine",
                        "--set", "training.cuda_graph_scope=[moe_router]"],
     ["training.cuda_graph_scope", "no MoE layers"]),
    ("llama3-8b.yaml", ["--set", "training.cuda_graph_impl=local", "--set", "training.cuda_graph_scope=[attn,attn]"],
     ["attn more than once"]),
    ("gpt-oss-120b.yaml", ["--set", "model.yarn_rotary_scaling_factor=0.5"],
     ["model.yarn_rotary_scaling_factor", "a factor >= 1"]),
    ("mixtral-8x7b.yaml", ["--set", "model.moe.moe_expert_load_imbalance=1e30"],
     ["model.moe.moe_expert_load_imbalance", "at most 8"]),
    ("deepseek-v3.yaml", ["--set", "model.position_embedding_type=learned_absolute"],
     ["model.position_embedding_type", "rope with multi_latent_attention"]),
    ("mixtral-8x7b.yaml", ["--set", "model.moe.moe_ffn_hidden_size=3"],
     ["model.moe.moe_ffn_hidden_size=3", "a divisor of 3"]),
    ("mixtral-8x7b.yaml", ["--set", "model.moe.moe_layer_freq=0"],
     ["model.moe.moe_layer_freq: input should be greater than 0, or input should be a valid list"]),
    ("mixtral-8x7b.yaml", ["--set", "model.moe.moe_layer_freq=[" + ",".join(["2"] * 32) + "]"],
     ["moe_layer_freq[0]: input should be 0 or 1", "(got 2) (and 31 more items alike: 2, 2, 2, ...)"]),
    ("mixtral-8x7b.yaml", ["--set", "model.moe.moe_layer_freq=[1,1,5,7]"],
     ["moe_layer_freq[2]: input should be 0 or 1 (or, as a whole, input should be a valid integer) (got 5) "
      "(and 1 more items alike: 7)"]),
    ("llama3-405b.yaml", ["--set", "parallelism.recompute_granularity=full", "--set", "parallelism.recompute_modules=[mlp]"],
     ["recompute_granularity: is full, but recompute_modules ['mlp']"]),
    ("deepseek-v3.yaml", ["--set", "parallelism.recompute_granularity=full"],
     ["error: --set parallelism.recompute_granularity=full", "recompute_modules=null"]),
])
def test_hostile_inputs_found_by_fuzzing(tmp_path, capsys, workload, argv, needles):
    code, err = run_cli(capsys, ["run", WORKLOADS / workload, "--fast", "--replicas", "1", *argv])
    check(code, err, 2, *needles)
    assert "constrained-int" not in err and "list[" not in err   # no pydantic union tags
    assert len(err.splitlines()) <= 3


@pytest.mark.parametrize("argv, needles", [
    (["search", WORKLOADS / "llama3-8b.yaml", "--top", "1000000000"], ["--top", "at most 200"]),
    (["search", WORKLOADS / "llama3-8b.yaml", "--ep", "2"], ["--ep", "needs an MoE model"]),
    (["search", WORKLOADS / "llama3-8b.yaml", "--cp", "1000000000"], ["--cp", "exceeds the 512 GPUs"]),
    (["search", WORKLOADS / "llama3-8b.yaml", "--tp", "3"], ["--tp", "does not divide the attention heads"]),
    (["search", WORKLOADS / "mixtral-8x7b.yaml", "--ep", "3"], ["--ep", "does not divide the 8 experts"]),
    (["search", WORKLOADS / "llama3-8b.yaml", "--recompute", ""], ["--recompute", "unknown recomputation"]),
    (["levers", WORKLOADS / "llama3-8b.yaml", "--only", ""], ["--only", "unknown lever"]),
])
def test_hostile_study_flags_found_by_fuzzing(capsys, argv, needles):
    """Flags no layout can meet are malformed (exit 2), not an infeasible search (they were exit 3,
    with a reason about pipeline splits); --top is bounded (10^9 re-simulated every layout)."""
    extra = ["--fast"] + (["--no-progress"] if argv[0] == "search" else [])
    code = main([str(a) for a in argv] + extra)
    err = capsys.readouterr().err
    check(code, err, 2, *needles)


@pytest.mark.parametrize("workload, sets, needles", [
    # a fabric-wide refusal names the --set that made the fabric unbuildable, with the file
    ("llama3-8b.yaml", ["--set", "cluster.fabric.switch_radix=2"],
     ["dgx-h100-superpod.yaml (with --set cluster.fabric.switch_radix=2)", "fabric:"]),
    ("llama3-8b.yaml", ["--set", "cluster.num_nodes=1000000000"], ["with --set cluster.num_nodes=1000000000"]),
    # a phase's key written by --set phases.K... is blamed on that --set, not on the file
    ("llama3-405b.yaml", ["--set", "phases.1.parallelism.tensor_model_parallel_size=3"],
     ["error: --set phases.1.parallelism.tensor_model_parallel_size=3: phases[1]", "num_attention_heads=128"]),
])
def test_errors_name_the_set_that_caused_them(capsys, workload, sets, needles):
    code, err = run_cli(capsys, ["run", WORKLOADS / workload, "--fast", "--replicas", "1", *sets])
    check(code, err, 2, *needles)


# --------------------------------------------------------------------------- s32 hostile-input round

@pytest.mark.parametrize("argv", [
    ["run", "{wl}", "--fast", "--calibration", "/dev/zero"],
    ["calibrate", "/dev/zero", "--cluster", str(TOPOLOGIES / "dgx-h100-superpod.yaml"), "--out", "{tmp}/c.yaml"],
])
def test_calibration_inputs_are_read_as_bounded_regular_files(tmp_path, capsys, argv):
    """/dev/zero as a calibration file or measured-runs CSV used to be read to the end (out of memory)."""
    wl = workload_file(tmp_path)
    code, err = run_cli(capsys, [a.format(wl=wl, tmp=tmp_path) for a in argv])
    check(code, err, 2, "/dev/zero", "not a regular file")


def _calibration(tmp_path, **efficiency) -> Path:
    """A hand-made calibration file with ``efficiency`` (the writer itself: tests/test_calibration.py)."""
    path = tmp_path / "cal.yaml"
    text = yaml.safe_dump({"trainsim_version": __import__("simulator").__version__, "cluster": "x",
                           "efficiency": efficiency, "residuals": []})
    path.write_text(text)
    return path


@pytest.mark.parametrize("field, value, needle", [
    ("gemm", float("inf"), "[0.01, 1]"), ("gemm", 5.0, "[0.01, 1]"), ("kernel_overhead", float("inf"), "at most 1 s")])
def test_calibration_efficiencies_are_bounded_as_vary_is(tmp_path, capsys, field, value, needle):
    """A calibrated eta_gemm of 5 gave an MFU of 164 % with exit 0."""
    cal = _calibration(tmp_path, **{field: value})
    code, err = run_cli(capsys, ["run", workload_file(tmp_path), "--fast", "--calibration", cal])
    check(code, err, 2, f"efficiency.{field}", needle)


def test_calibration_duplicate_key(tmp_path, capsys):
    cal = _calibration(tmp_path, gemm=0.8)
    cal.write_text(cal.read_text() + "cluster: y\n")
    code, err = run_cli(capsys, ["run", workload_file(tmp_path), "--fast", "--calibration", cal])
    check(code, err, 2, str(cal), "duplicate key")


def test_huge_steps_factor_is_refused(tmp_path, capsys):
    code, err = run_cli(capsys, ["run", workload_file(tmp_path), "--fast", "--set", "training.optimizer.steps_factor=1e300"])
    check(code, err, 2, "training.optimizer.steps_factor", "100")


def test_multiplier_to_infinity_is_refused(tmp_path, capsys):
    code, err = run_cli(capsys, ["compare", workload_file(tmp_path), "--fast", "--vary", "num_gpus=x1e308"])
    check(code, err, 2, "--vary", "num_gpus", "not a finite number")


@pytest.mark.parametrize("name", ["t.html", "t"])
def test_topology_draw_needs_an_image_suffix(tmp_path, capsys, name):
    code, err = run_cli(capsys, ["topology", TOPOLOGIES / "dgx-h100-superpod.yaml", "--nodes", "4",
                                 "--draw", tmp_path / name])
    check(code, err, 2, "--draw", ".png")
    assert not (tmp_path / name).exists()


def test_a_ratio_is_not_read_as_a_base_60_number(tmp_path, capsys):
    """YAML 1.1 reads 1:1 as 61: an oversubscription of "1:1" silently cut bisection 32-fold."""
    from simulator.config.safe_yaml import safe_load
    from simulator import load_scenario

    assert safe_load("a: 1:1\nb: 8:32\nc: 12:30:00") == {"a": "1:1", "b": "8:32", "c": "12:30:00"}
    one = load_scenario(WORKLOADS / "llama3-8b.yaml", overrides=["cluster.fabric.oversubscription=1:1"])
    two = load_scenario(WORKLOADS / "llama3-8b.yaml", overrides=["cluster.fabric.oversubscription=2:1"])
    assert one.cluster.fabric.oversubscription == 1.0 and two.cluster.fabric.oversubscription == 2.0
    code, err = run_cli(capsys, ["run", workload_file(tmp_path), "--set", "num_gpus=8:32"])
    check(code, err, 2, "num_gpus", "8:32")


def test_an_overflowing_result_is_refused_not_printed(tmp_path, capsys):
    code, err = run_cli(capsys, ["run", workload_file(tmp_path), "--fast", "--json",
                                 "--set", "checkpoint.storage_bandwidth=1e-300 B/s"])
    check(code, err, 2, "is not a finite number", "campaign.")


def test_a_huge_microbatch_count_takes_the_closed_form(tmp_path, capsys):
    """1,000,000 microbatches used to run the step DES for minutes and gigabytes."""
    import json

    argv = ["run", workload_file(tmp_path), "--json", "--replicas", "1", "--gpus", "8",
            "--set", "parallelism.pipeline_model_parallel_size=4",
            "--set", "training.global_batch_size=1000000"]
    assert main([str(a) for a in argv]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["engine"].startswith("analytical (the step DES would run")
    code, err = run_cli(capsys, [*argv, "--trace", tmp_path / "t.json"])
    check(code, err, 2, "--trace", "passes")


@pytest.mark.parametrize("extra, needle", [
    (["--set", "parallelism.pipeline_model_parallel_size=3"], "(with --set parallelism.pipeline_model_parallel_size=3): num_gpus"),
    (["--gpus", "16384"], "(with --gpus 16384): training.global_batch_size"),
])
def test_a_cross_key_check_names_the_override_that_broke_it(tmp_path, capsys, extra, needle):
    """num_gpus in the file fails against a PP from --set: the message used to blame the file alone."""
    wl = workload_file(tmp_path)
    code, err = run_cli(capsys, ["run", wl, "--fast", *extra])
    check(code, err, 2, str(wl), needle)


def test_written_files_get_the_usual_mode_and_calibrate_out_refuses_a_folder(tmp_path, capsys):
    """--plot / --draw / --trace files were created 0600 (mkstemp); calibrate --out wrote directly."""
    import os
    import stat

    from simulator.outputs import write_text

    old = os.umask(0o022)
    try:
        path = write_text(tmp_path / "a" / "f.txt", "x")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    code, err = run_cli(capsys, ["calibrate", REPO / "simulator" / "calibration" / "data" / "loso_residuals.csv",
                                 "--cluster", TOPOLOGIES / "dgx-h100-superpod.yaml", "--out", tmp_path])
    check(code, err, 2, "--out", str(tmp_path))


def test_an_output_folder_that_refuses_files_is_caught_before_any_work(tmp_path, capsys, monkeypatch):
    """os.access says yes to root in /proc; the report was then written after the work and failed
    with a raw OSError naming no flag. The check now creates and removes a probe file."""
    import tempfile as tf

    real = tf.mkstemp

    def refuse(*args, **kw):
        if str(kw.get("dir", "")).endswith("locked"):
            raise PermissionError(13, "Permission denied")
        return real(*args, **kw)

    (tmp_path / "locked").mkdir()
    monkeypatch.setattr(tf, "mkstemp", refuse)
    code, err = run_cli(capsys, ["run", workload_file(tmp_path), "--fast", "--report", tmp_path / "locked" / "r.html"])
    check(code, err, 2, "--report", "cannot write in", "Permission denied")


@pytest.mark.parametrize("setting, needles", [
    ("cluster.fabric.torus_dims=[8,8,8]", ("fabric.torus_dims", "torus3d")),
    ("training.eval_time=1 min", ("training.eval_time", "eval_interval")),
    ("cluster.node.nvlink.domain_size=3", ("node.nvlink.domain_size", "multiple")),
    ("cluster.node.gpus_per_node=1000000000", ("node.gpus_per_node", "1024")),
])
def test_keys_that_would_do_nothing_or_describe_no_machine_are_refused(tmp_path, capsys, setting, needles):
    code, err = run_cli(capsys, ["run", workload_file(tmp_path), "--fast", "--set", setting])
    check(code, err, 2, f"--set {setting}", *needles)


@pytest.mark.parametrize("extra", [["--trace", ""], ["--scheduler", " "], ["--report", ""]])
def test_an_empty_file_or_address_option_is_refused(tmp_path, capsys, extra):
    """--trace '' used to be taken for "no --trace" and silently ignored."""
    code, err = run_cli(capsys, ["run", workload_file(tmp_path), "--fast", *extra])
    check(code, err, 2, extra[0], "is empty")


def test_a_negative_value_gets_a_hint(tmp_path, capsys):
    code, err = run_cli(capsys, ["size", workload_file(tmp_path), "--deadline", "-5d"])
    check(code, err, 2, "--deadline=VALUE")


def test_a_fabric_that_cannot_be_built_names_the_override_on_any_key(tmp_path, capsys):
    """gpus_per_node from --set against the file's NICs: the node.nics error named the cluster file only."""
    code, err = run_cli(capsys, ["run", workload_file(tmp_path), "--fast", "--set", "cluster.node.gpus_per_node=3"])
    check(code, err, 2, "(with --set cluster.node.gpus_per_node=3): node.nics")
