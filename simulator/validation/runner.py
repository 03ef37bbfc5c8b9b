"""`trainsim validate`: predict every published run in the validation set and report the error."""
from __future__ import annotations

import csv
import math
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path

from simulator.config.loader import read_yaml
from simulator.config.scenario import Scenario, build_scenario
from simulator.cost.efficiency import DEFAULT, Efficiency
from simulator.errors import ConfigError
from simulator.model.arch import resolve
from simulator.model.flops import model_flops_per_token
from simulator.simulate import simulate

TOPOLOGIES = Path(__file__).resolve().parents[2] / "topologies"

# per source: cluster file and the software facts of that source (see data/SOURCES.md)
SOURCES = {
    "narayanan2021-t1": ("dgx-a100-selene.yaml", {"use_flash_attn": False}, {"overlap_grad_reduce": False}),
    "narayanan2021-t2": ("dgx-a100-selene.yaml", {"use_flash_attn": False}, {"overlap_grad_reduce": False}),
    "megatron-core-h100": ("dgx-h100-superpod.yaml", {"use_flash_attn": True},
                           {"distributed_optimizer": True, "sequence_parallel": True,
                            "tp_comm_overlap": True, "overlap_grad_reduce": True, "overlap_param_gather": True}),
    "bigscience-tr11": ("jean-zay-a100.yaml", {"use_flash_attn": False}, {"overlap_grad_reduce": False}),
}


@dataclass(frozen=True)
class Row:
    source: str
    run: str
    num_gpus: int
    metric: str
    published: float
    predicted: float
    step_time_s: float

    @property
    def error(self) -> float:
        return (self.predicted - self.published) / self.published

    def to_json(self) -> dict:
        return {**asdict(self), "error": self.error}


def load_rows() -> list[dict]:
    text = resources.files("simulator.validation").joinpath("data/iteration.csv").read_text(encoding="utf-8")
    return list(csv.DictReader(text.splitlines()))


def _int(text: str, default: int | None = None) -> int | None:
    return int(text) if text.strip() else default


def workload_of(row: dict) -> dict:
    """The workload mapping a published row describes (unstated fields: see SOURCES.md)."""
    _, training_extra, par_extra = SOURCES[row["source"]]
    bloom = row["run"].startswith("bloom")
    model = {
        "num_layers": int(row["num_layers"]), "hidden_size": int(row["hidden_size"]),
        "ffn_hidden_size": int(row["ffn_hidden_size"]), "num_attention_heads": int(row["num_attention_heads"]),
        "num_query_groups": int(row["num_query_groups"]), "seq_length": int(row["seq_length"]),
        "vocab_size": int(row["vocab_size"]), "activation": "gelu", "normalization": "layernorm",
        "position_embedding_type": "alibi" if bloom else "learned_absolute", "embedding_layernorm": bloom,
        # GPT-era Megatron(-DeepSpeed) runs: the frameworks' default dropout 0.1 (not stated per row)
        "attention_dropout": 0.1, "hidden_dropout": 0.1,
    }
    zero = _int(row["zero_stage"], None)
    parallel = {
        "tensor_model_parallel_size": int(row["tp"]), "pipeline_model_parallel_size": int(row["pp"]),
        "data_parallel_size": int(row["dp"]), "micro_batch_size": _int(row["micro_batch_size"], 1),
        "recompute_granularity": row["recompute"] or "none", **par_extra,
    }
    if row["virtual_pp"].strip():
        parallel["virtual_pipeline_model_parallel_size"] = int(row["virtual_pp"])
    if zero is not None and not parallel.get("distributed_optimizer"):
        parallel["zero_stage"] = zero
        if zero >= 3:   # the 2021 DeepSpeed ZeRO-3 runs fetched parameters tensor by tensor
            parallel["fsdp_unit"] = "tensor"
    if row["sequence_parallel"].strip():
        parallel["sequence_parallel"] = row["sequence_parallel"] == "true"
    layers, pp = int(row["num_layers"]), int(row["pp"])
    if layers % pp:  # uneven split as the framework's partitioner does: lighter first and last stages
        inner = -(-layers // pp)
        edge = (layers - inner * (pp - 2)) // 2
        if pp > 2 and edge > 0 and edge * 2 + inner * (pp - 2) == layers:
            parallel["decoder_first_pipeline_num_layers"] = edge
            parallel["decoder_last_pipeline_num_layers"] = edge
    precision = row["precision"].rstrip("?") or "bf16"
    return {
        "name": row["run"], "num_gpus": int(row["num_gpus"]), "model": model,
        "training": {"global_batch_size": int(row["global_batch_size"]), "precision": precision,
                     "train_iters": 1, **training_extra},
        "parallelism": parallel,
    }


def scenario_of(row: dict) -> Scenario:
    cluster_file = TOPOLOGIES / SOURCES[row["source"]][0]
    if not cluster_file.exists():
        raise ConfigError("the bundled topologies/ folder is missing (install from a checkout with "
                          "pip install -e .)", source=str(cluster_file))
    return build_scenario(workload_of(row), read_yaml(cluster_file),
                          workload_source=f"validation:{row['source']}/{row['run']}",
                          cluster_source=str(cluster_file))


def narayanan_flops(s: Scenario) -> float:
    """Narayanan et al. 2021, Eq. 3: 96 B s l h^2 (1 + s/6h + V/16lh) FLOPs per step."""
    a = resolve(s.workload.model)
    B, sq, l, h, V = s.workload.training.global_batch_size, a.seq, a.num_layers, a.hidden, a.vocab
    return 96.0 * B * sq * l * h * h * (1 + sq / (6 * h) + V / (16 * l * h))


def predict(row: dict, eff: Efficiency = DEFAULT, engine: str = "des") -> Row:
    s = scenario_of(row)
    r = simulate(s, efficiency=eff, check_memory=False, engine=engine)
    metric = row["metric"]
    if metric == "tflops_per_gpu_incl_recompute":
        pred = narayanan_flops(s) / (r.step_time_s * s.num_gpus) / 1e12
    elif metric == "tflops_per_gpu":
        a = resolve(s.workload.model)
        flops = model_flops_per_token(a) * s.workload.training.global_batch_size * a.seq
        pred = flops / (r.step_time_s * s.num_gpus) / 1e12
    elif metric == "step_time_s":
        pred = r.step_time_s
    else:
        raise ValueError(f"unknown metric {metric!r} in the validation set")
    return Row(row["source"], row["run"], s.num_gpus, metric, float(row["value"]), pred, r.step_time_s)


def run_all(eff: Efficiency = DEFAULT, engine: str = "des") -> list[Row]:
    return [predict(row, eff, engine) for row in load_rows()]


def mape(rows: list[Row]) -> float:
    return sum(abs(r.error) for r in rows) / len(rows)


def format_table(rows: list[Row]) -> str:
    lines = [f"{'source':<20} {'run':<24} {'GPUs':>5} {'metric':<30} {'published':>10} {'predicted':>10} {'error':>8}"]
    for r in rows:
        lines.append(f"{r.source:<20} {r.run:<24} {r.num_gpus:>5} {r.metric:<30} {r.published:>10.4g} "
                     f"{r.predicted:>10.4g} {100 * r.error:>+7.1f}%")
    by_source: dict[str, list[Row]] = {}
    for r in rows:
        by_source.setdefault(r.source, []).append(r)
    lines.append("")
    for src, rs in by_source.items():
        lines.append(f"mean absolute error {src:<20} {100 * mape(rs):5.1f} %  ({len(rs)} rows)")
    worst = max(rows, key=lambda r: abs(r.error))
    lines.append(f"mean absolute error {'all':<20} {100 * mape(rows):5.1f} %  ({len(rows)} rows); "
                 f"worst {worst.run} {100 * worst.error:+.1f} %")
    assert not math.isnan(mape(rows))
    return "\n".join(lines)


# whole-run figures: the bundled workload that reproduces each published run
WHOLE_RUN_WORKLOADS = {"bloom-176b": "bloom-176b.yaml"}
WORKLOADS = Path(__file__).resolve().parents[2] / "workloads"


def load_whole_runs() -> list[dict]:
    text = resources.files("simulator.validation").joinpath("data/whole_runs.csv").read_text(encoding="utf-8")
    return list(csv.DictReader(text.splitlines()))


def whole_run_rows(replicas: int = 32, seed: int = 0) -> list[Row]:
    """Published whole-run figures predicted end to end (step DES + campaign + energy) from the
    bundled workload files. GPU energy is our activity-based model; the source multiplies
    GPU-hours by the TDP (an upper bound), which docs/validation.md discusses."""
    from simulator import load_scenario

    rows, cache = [], {}
    for pub in load_whole_runs():
        name = WHOLE_RUN_WORKLOADS[pub["run"]]
        if name not in cache:
            cache[name] = simulate(load_scenario(WORKLOADS / name), replicas=replicas, seed=seed).to_json()
        r = cache[name]
        pred = {"gpu_hours": r["gpu_hours"], "gpu_dynamic_energy": r["gpu_energy_mwh"] * 1000.0}[pub["metric"]]
        rows.append(Row(pub["source"], pub["run"], int(pub["num_gpus"]), f"{pub['metric']} ({pub['unit']})",
                        float(pub["value"]), pred, r["step_time_s"]))
    return rows
