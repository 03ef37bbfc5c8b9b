"""Fuzz the CLI's input surface (issue 16): random YAML documents as workload and cluster files, and
random ``--set`` strings on a real workload. Whatever the input, trainsim answers with exit 0, 2 or 3,
never a traceback or an "internal error", and within a bounded time.

The keys that lengthen a simulated campaign (training length, failure rates, bandwidths that feed
checkpoints) are left out of the --set pool: bounding the campaign itself is tested in
test_campaign.py; here every example must stay fast so the whole file runs in well under a minute.
"""
from __future__ import annotations

import contextlib
import io
import signal
import time
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simulator.cli import main

ROOT = Path(__file__).resolve().parents[1]
W8 = str(ROOT / "workloads" / "llama3-8b.yaml")
CLUSTER = str(ROOT / "topologies" / "dgx-h100-superpod.yaml")
SECONDS = 10            # one example, worst case (a typical one takes ~0.05 s)

# real keys, so that values reach the validators and the model (not only "unknown key")
KEYS = [
    "name", "description", "num_gpus", "cluster", "model.num_layers", "model.hidden_size",
    "model.ffn_hidden_size", "model.num_attention_heads", "model.num_query_groups", "model.kv_channels",
    "model.vocab_size", "model.seq_length", "model.activation", "model.moe", "model.moe.num_experts",
    "training.global_batch_size", "training.precision", "training.optimizer",
    "parallelism.tensor_model_parallel_size", "parallelism.pipeline_model_parallel_size",
    "parallelism.virtual_pipeline_model_parallel_size", "parallelism.context_parallel_size",
    "parallelism.expert_model_parallel_size", "parallelism.micro_batch_size", "parallelism.zero_stage",
    "parallelism.sequence_parallel", "parallelism.recompute_granularity",
    "parallelism.decoder_first_pipeline_num_layers", "parallelism.decoder_last_pipeline_num_layers",
    "cluster.num_nodes", "cluster.gpu", "cluster.gpu.tdp", "cluster.gpu.idle_power",
    "cluster.node.gpus_per_node", "cluster.fabric.kind", "cluster.fabric.tiers", "cluster.fabric.switch_radix",
    "cluster.fabric.oversubscription", "cluster.fabric.nodes_per_unit", "cluster.power.pue",
    "cluster.prices.gpu_hour", "cluster.prices.carbon_intensity_profile", "cluster.reliability.spare_nodes",
    "nonsense", "model.nonsense.deeper", "cluster", "model",
]

SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-10**12, 10**12), st.sampled_from([0, 1, 2, 3, 7, 64, 10**9, 10**100]),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=30),
    st.sampled_from(["1e0", "400 Gb/s", "80 GiB", "15 min", "0 USD", "-1 W", "1e308 TFLOP/s", "auto",
                     "h100", "/dev/zero", ".", "*a", "&a [*a]", "[1, 2]", "{a: 1}", "~", "0x10", "1_000"]),
)
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4)
                      | st.dictionaries(st.text(max_size=10), inner, max_size=4), max_leaves=12)


class _Slow(Exception):
    pass


def _alarm(signum, frame):
    raise _Slow()


def run(argv: list[str]) -> tuple[int, str, float]:
    """main(argv) with its output captured and a hard time limit (SIGALRM)."""
    err = io.StringIO()
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(SECONDS)
    t = time.perf_counter()
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
            code = main(argv)
    except _Slow:
        code = -1
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    return code, err.getvalue(), time.perf_counter() - t


def check(argv: list[str]) -> None:
    code, err, took = run(argv)
    assert code != -1, f"no answer within {SECONDS} s: {argv}"
    assert code in (0, 2, 3), f"exit {code}: {argv}\n{err}"
    assert "Traceback" not in err and "internal error" not in err, f"{argv}\n{err}"
    assert len(err) < 25_000, f"{len(err)} characters of error for {argv}"


FUZZ = settings(max_examples=100, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@FUZZ
@given(st.lists(st.tuples(st.sampled_from(KEYS), VALUES), min_size=1, max_size=3))
def test_set_strings(sets):
    argv = ["run", W8, "--fast", "--replicas", "1"]
    for key, value in sets:
        text = value if isinstance(value, str) else yaml.safe_dump(value, default_flow_style=True).strip()
        text = text.removesuffix("...").strip()
        argv += ["--set", f"{key}={text}"]
    check(argv)


@FUZZ
@given(st.text(max_size=40))
def test_raw_set_text(text):
    check(["run", W8, "--fast", "--replicas", "1", "--set", text])


def _document(draw_map: dict, base: dict) -> dict:
    out = dict(base)
    for key, value in draw_map.items():
        node = out
        *parents, last = key.split(".")
        for p in parents:
            node = node.setdefault(p, {}) if isinstance(node.get(p, {}), dict) else {}
        node[last] = value
    return out


WORKLOAD = yaml.safe_load(Path(W8).read_text())
WORKLOAD["cluster"] = CLUSTER


@FUZZ
@given(st.dictionaries(st.sampled_from([k for k in KEYS if not k.startswith("cluster.")]), VALUES, max_size=3),
       st.sampled_from(["yaml", "text"]), st.text(max_size=60))
def test_yaml_documents(tmp_path_factory, changes, kind, junk):
    path = tmp_path_factory.mktemp("fuzz") / "w.yaml"
    if kind == "yaml":
        path.write_text(yaml.safe_dump(_document(changes, WORKLOAD), sort_keys=False))
    else:
        path.write_text(junk)
    check(["run", str(path), "--fast", "--replicas", "1"])
    check(["topology", str(path)])
