"""`trainsim validate`: predict every published run in the validation set and report the error."""
from __future__ import annotations

import csv
import math
import re
import typing
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path

from pydantic import BaseModel

from simulator.config.loader import read_yaml
from simulator.config.scenario import Scenario, build_scenario
from simulator.cost.efficiency import DEFAULT, Efficiency
from simulator.errors import ConfigError
from simulator.model.arch import resolve
from simulator.model.flops import model_flops_per_token
from simulator.cost.step import estimate_step
from simulator.simulate import simulate

TOPOLOGIES = Path(__file__).resolve().parents[2] / "topologies"

# per source: cluster file (or one per system the source names) and the software facts of that
# source (see data/SOURCES.md)
_MODERN_PAR = {"overlap_grad_reduce": True, "overlap_param_gather": True}
# NeMo 24.07 and Megatron-Bridge performance runs reduce and accumulate gradients in bf16, not fp32:
# NeMo-Framework-Launcher's H100 scripts pass optim.grad_sync_dtype=bf16 to the distributed Adam
# (examples/training/gpt/h100/175b_fp8_16node.sh@edc90457, llama/h100/llama3_8b_fp8.sh@7e91d096);
# Megatron-Bridge's performance configs set mixed_precision.grad_reduce_in_fp32 = False and
# ddp.grad_reduce_in_fp32 = False for every model family (scripts/performance/configs/llama3/
# llama3_llm_pretrain.py set_llama3_common_configs @1c43b392 (v0.2.1), likewise llama31, qwen3,
# deepseek, gpt_oss; configs/llama/llama3_llm_pretrain.py @9c9dd848 (v0.3.1)).
_MODERN_TRAINING = {"use_flash_attn": True, "grad_dtype": "bf16"}
SOURCES = {
    "narayanan2021-t1": ("dgx-a100-selene.yaml", {"use_flash_attn": False}, {"overlap_grad_reduce": False}),
    "narayanan2021-t2": ("dgx-a100-selene.yaml", {"use_flash_attn": False}, {"overlap_grad_reduce": False}),
    "megatron-core-h100": ("dgx-h100-superpod.yaml", {"use_flash_attn": True},
                           {"distributed_optimizer": True, "sequence_parallel": True,
                            "tp_comm_overlap": True, "overlap_grad_reduce": True, "overlap_param_gather": True}),
    "bigscience-tr11": ("jean-zay-a100.yaml", {"use_flash_attn": False, "cuda_launch_blocking": True},
                        {"overlap_grad_reduce": False}),
    "nemo-24.07": (None, _MODERN_TRAINING, _MODERN_PAR),
    "megatron-bridge": (None, _MODERN_TRAINING, _MODERN_PAR),
}
# modern.csv's cluster_hint -> the bundled topology of that system
SYSTEMS = {
    "DGX H100, 8x400G IB": "dgx-h100-superpod.yaml",
    "DGX B200, 8x400G IB": "dgx-b200.yaml",
    "DGX B300": "dgx-b300.yaml",
    "GB200 NVL72": "gb200-nvl72.yaml",
    "GB300 NVL72": "gb300-nvl72.yaml",
}
DATA_FILES = ("iteration.csv", "modern.csv")
ERA_2021 = ("narayanan2021-t1", "narayanan2021-t2", "megatron-core-h100", "bigscience-tr11")


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


@dataclass(frozen=True)
class Skipped:
    """A published row the simulator cannot express yet, and why."""

    source: str
    run: str
    reason: str

    def to_json(self) -> dict:
        return asdict(self)


def load_rows(files: tuple[str, ...] = DATA_FILES) -> list[dict]:
    """Every published step-throughput row, the columns of all files (absent cells empty)."""
    rows: list[dict] = []
    for name in files:
        text = resources.files("simulator.validation").joinpath(f"data/{name}").read_text(encoding="utf-8")
        rows.extend(csv.DictReader(text.splitlines()))
    columns = {k for r in rows for k in r}
    return [{k: r.get(k) or "" for k in sorted(columns)} for r in rows]


def _int(text: str, default: int | None = None) -> int | None:
    return int(text) if text.strip() else default


def _attention(text: str) -> dict:
    """Model keys for modern.csv's ``attention`` cell (mha / gqa / mla ...; sliding windows, sinks)."""
    out: dict = {}
    if text.startswith("mla"):
        nums = {k: int(v) for k, v in re.findall(r"(q_lora_rank|kv_lora_rank) (\d+)", text)}
        qk = re.search(r"qk head (\d+) \+ rope head (\d+)", text)
        v = re.search(r"v head (\d+)", text)
        if not (qk and v and "kv_lora_rank" in nums):
            raise ValueError(f"unreadable MLA description {text!r}")
        out["multi_latent_attention"] = {**nums, "qk_nope_head_dim": int(qk[1]), "qk_rope_head_dim": int(qk[2]),
                                         "v_head_dim": int(v[1])}
    window = re.search(r"sliding_window (\d+)", text)
    if window:
        out["sliding_window"] = int(window[1])
        if "every other layer" in text:
            out["window_attn_skip_freq"] = 2      # one full-attention layer after each windowed one
    if "attention sinks" in text:
        out["softmax_type"] = "learnable"
    if "qk-layernorm" in text:
        out["qk_layernorm"] = True
    return out


def _model_of(row: dict) -> dict:
    run = row["run"]
    bloom, gpt3 = run.startswith("bloom"), row["source"] in ("narayanan2021-t1", "narayanan2021-t2",
                                                               "megatron-core-h100") or "-gpt3-" in run
    model = {
        "num_layers": int(row["num_layers"]), "hidden_size": int(row["hidden_size"]),
        "ffn_hidden_size": int(row["ffn_hidden_size"]), "num_attention_heads": int(row["num_attention_heads"]),
        "num_query_groups": int(row["num_query_groups"]), "seq_length": int(row["seq_length"]),
        "vocab_size": int(row["vocab_size"]), "activation": row["activation"] or "gelu",
        # layernorm1p (zero-centred gamma) costs what a LayerNorm costs
        "normalization": "rmsnorm" if row["normalization"] == "rmsnorm" else "layernorm",
    }
    if row["source"] in ERA_2021:
        # GPT-era Megatron(-DeepSpeed) runs: the frameworks' default dropout 0.1 (not stated per row)
        model.update(attention_dropout=0.1, hidden_dropout=0.1)
    if bloom:
        model.update(position_embedding_type="alibi", embedding_layernorm=True)
    elif gpt3:
        model["position_embedding_type"] = "learned_absolute"
    else:   # Llama, Nemotron-4, Qwen3, DeepSeek-V3, GPT-OSS: RoPE, untied output layer, no biases but GPT-OSS's
        model.update(position_embedding_type="rope", untie_embeddings_and_output_weights=True,
                     add_bias_linear="biases on" in row["notes"])
        if "bias_dropout_fusion false" in row["notes"]:   # GPT-OSS provider (data/SOURCES.md)
            model["bias_dropout_fusion"] = False
        clamp = re.search(r"with clamp (\d+(?:\.\d+)?)", row["notes"])
        if clamp:   # GPT-OSS's clamped gate: Megatron activation_func_clamp_value (data/SOURCES.md)
            model["activation_func_clamp_value"] = float(clamp[1])
    attention = _attention(row["attention"])
    if "multi_latent_attention" in attention:   # MLA sets its own head shapes (no query groups, no kv_channels)
        del model["num_query_groups"]
    elif row["kv_channels"].strip():
        model["kv_channels"] = int(row["kv_channels"])
    model.update(attention)
    if row["num_experts"].strip():
        moe = {"num_experts": int(row["num_experts"]), "moe_router_topk": int(row["moe_router_topk"]),
               "moe_ffn_hidden_size": int(row["moe_ffn_hidden_size"])}
        shared = _int(row["moe_shared_experts"], 0)
        if shared:
            moe["moe_shared_expert_intermediate_size"] = shared * int(row["moe_ffn_hidden_size"])
        if _int(row["moe_first_dense_layers"], 0):
            moe["first_k_dense_replace"] = int(row["moe_first_dense_layers"])
        model["moe"] = moe
    if _int(row["mtp_layers"], 0):
        model["mtp_num_layers"] = int(row["mtp_layers"])
    return model


def _cuda_graphs(cell: str) -> dict:
    """Training keys for modern.csv's ``cuda_graphs`` cell: empty or "none" (eager), an impl
    ("full_iteration"), or "impl:scope+scope" (transformer_engine:attn+moe_router)."""
    cell = cell.strip()
    if not cell or cell == "none":
        return {}
    impl, _, scopes = cell.partition(":")
    return {"cuda_graph_impl": impl, **({"cuda_graph_scope": scopes.split("+")} if scopes else {})}


def workload_of(row: dict) -> dict:
    """The workload mapping a published row describes (unstated fields: see SOURCES.md)."""
    _, training_extra, par_extra = SOURCES[row["source"]]
    zero = _int(row["zero_stage"], None)
    parallel = {
        "tensor_model_parallel_size": int(row["tp"]), "pipeline_model_parallel_size": int(row["pp"]),
        "data_parallel_size": int(row["dp"]), "micro_batch_size": _int(row["micro_batch_size"], 1),
        "recompute_granularity": row["recompute"] or "none", **par_extra,
    }
    if row["source"] in ("nemo-24.07", "megatron-bridge"):
        if zero == 1:
            parallel["distributed_optimizer"] = True   # Megatron's distributed optimizer
        parallel["tp_comm_overlap"] = row["tp_comm_overlap"] == "true"
        if row.get("moe_a2a_overlap") == "true":
            parallel["overlap_moe_expert_parallel_comm"] = True
    if row["virtual_pp"].strip():
        parallel["virtual_pipeline_model_parallel_size"] = int(row["virtual_pp"])
    if _int(row["cp"], 1) > 1:
        parallel["context_parallel_size"] = int(row["cp"])
    if _int(row["ep"], 1) > 1:
        parallel["expert_model_parallel_size"] = int(row["ep"])
    if row["etp"].strip() and int(row["etp"]) != int(row["tp"]):
        parallel["expert_tensor_parallel_size"] = int(row["etp"])
    if _int(row["offload"], 0):
        parallel.update(cpu_offloading=True, cpu_offloading_num_layers=int(row["offload"]))
    if zero is not None and not parallel.get("distributed_optimizer"):
        parallel["zero_stage"] = zero
        if zero >= 3 and row["source"] in ERA_2021:   # 2021 DeepSpeed ZeRO-3 fetched tensor by tensor
            parallel["fsdp_unit"] = "tensor"
    if row["sequence_parallel"].strip():
        parallel["sequence_parallel"] = row["sequence_parallel"] == "true"
    layers, pp = int(row["num_layers"]), int(row["pp"])
    if row["pipeline_layout"].strip():
        # Megatron-Core pipeline_model_parallel_layout from the release's performance recipe (the
        # tables do not print it). DeepSeek-V3 rows: NVIDIA-NeMo/Megatron-Bridge
        # src/megatron/bridge/recipes/deepseek/deepseek_v3.py set_deepseek_v3_pipeline_model_parallel_layout
        # layout_map @ 1c43b392 (v0.2.1, 25.11) and @ 9c9dd848 (v0.3.1, 26.02.01); the v0.3.1 GB300
        # pp_layout in scripts/performance/configs/deepseek/deepseek_workload_base_configs.py @ 9c9dd848;
        # PP8 VP4 from the v0.2.1 H100 recipe (scripts/performance/configs/deepseek/deepseek_llm_pretrain.py
        # @ 1c43b392). Each row's notes say which (data/SOURCES.md).
        parallel["pipeline_model_parallel_layout"] = row["pipeline_layout"].strip()
        parallel.pop("virtual_pipeline_model_parallel_size", None)   # the layout sets it
        if row["virtual_pp"].strip():
            parallel["virtual_pipeline_model_parallel_size"] = int(row["virtual_pp"])
    elif row["first_stage_layers"].strip():
        parallel["decoder_first_pipeline_num_layers"] = int(row["first_stage_layers"])
        parallel["decoder_last_pipeline_num_layers"] = int(row["last_stage_layers"])
    elif layers % pp:  # uneven split as the framework's partitioner does: lighter first and last stages
        inner = -(-layers // pp)
        edge = (layers - inner * (pp - 2)) // 2
        if pp > 2 and edge > 0 and edge * 2 + inner * (pp - 2) == layers:
            parallel["decoder_first_pipeline_num_layers"] = edge
            parallel["decoder_last_pipeline_num_layers"] = edge
    precision = row["precision"].rstrip("?") or "bf16"
    if row["source"] == "megatron-bridge" and precision == "fp8":
        # the 26.02 table prints "FP8" without its scaling; that release's FP8 presets are per-tensor
        # current scaling (scripts/performance/configs@9c9dd848 (v0.3.1): ..._FP8_CS_V2 presets)
        precision = "fp8_cs"
    return {
        "name": row["run"], "num_gpus": int(row["num_gpus"]), "model": _model_of(row),
        "training": {"global_batch_size": int(row["global_batch_size"]), "precision": precision,
                     "train_iters": 1, **training_extra, **_cuda_graphs(row.get("cuda_graphs", ""))},
        "parallelism": parallel,
    }


def cluster_file_of(row: dict) -> Path:
    name = SOURCES[row["source"]][0] or SYSTEMS.get(row["cluster_hint"])
    if name is None:
        raise ConfigError("no bundled topology for this system", source="validation data",
                          path=f"{row['run']}.cluster_hint", value=row["cluster_hint"],
                          expected=", ".join(SYSTEMS))
    return TOPOLOGIES / name


def scenario_of(row: dict) -> Scenario:
    cluster_file = cluster_file_of(row)
    if not cluster_file.exists():
        raise ConfigError("the bundled topologies/ folder is missing (install from a checkout with "
                          "pip install -e .)", source=str(cluster_file))
    return build_scenario(workload_of(row), read_yaml(cluster_file),
                          workload_source=f"validation:{row['source']}/{row['run']}",
                          cluster_source=str(cluster_file))


# what each workload key the published rows may need stands for (for "not expressible" reasons)
FEATURES = {
    "model.multi_latent_attention": "multi-head latent attention",
    "model.sliding_window": "sliding-window attention", "model.window_attn_skip_freq": "sliding-window attention",
    "model.softmax_type": "attention sinks", "model.qk_layernorm": "QK-layernorm",
    "model.mtp_num_layers": "multi-token prediction", "model.moe.first_k_dense_replace": "leading dense MoE layers",
    "parallelism.expert_tensor_parallel_size": "expert tensor parallelism",
    "parallelism.pipeline_model_parallel_layout": "pipeline layout",
    "parallelism.cpu_offloading": "activation CPU offload", "parallelism.cpu_offloading_num_layers": "activation CPU offload",
}


def _unknown_keys(mapping: dict, model: type, prefix: str = "") -> list[str]:
    """Key paths of ``mapping`` that the pydantic schema ``model`` does not have."""
    out = []
    for key, value in mapping.items():
        field = model.model_fields.get(key)
        if field is None:
            out.append(prefix + key)
            continue
        if isinstance(value, dict):
            sub = [t for t in (field.annotation, *typing.get_args(field.annotation))
                   if isinstance(t, type) and issubclass(t, BaseModel)]
            if sub:
                out.extend(_unknown_keys(value, sub[0], f"{prefix}{key}."))
    return out


def not_expressible(row: dict) -> str | None:
    """Why this build cannot predict ``row`` (a feature it lacks, a GPU or system it does not know), or None."""
    from simulator.config.workload import WorkloadConfig

    missing = _unknown_keys(workload_of(row), WorkloadConfig)
    if missing:
        labels = dict.fromkeys(FEATURES.get(k, k) for k in missing)
        return "; ".join(f"{label} ({', '.join(k for k in missing if FEATURES.get(k, k) == label)})"
                         for label in labels)
    try:
        cluster_file = cluster_file_of(row)
        if not cluster_file.exists():
            return f"no bundled topology {cluster_file.name} for {row['cluster_hint'] or row['source']}"
        gpu = read_yaml(cluster_file).get("gpu")
        if row["gpu"] and isinstance(gpu, str) and gpu != row["gpu"]:
            return f"the bundled {cluster_file.name} holds {gpu}, the row ran on {row['gpu']}"
        scenario_of(row)
    except ConfigError as e:
        text = str(e)
        return text.split(": ", 1)[-1] if text.startswith("validation:") else text
    return None


def narayanan_flops(s: Scenario) -> float:
    """Narayanan et al. 2021, Eq. 3: 96 B s l h^2 (1 + s/6h + V/16lh) FLOPs per step."""
    a = resolve(s.workload.model)
    B, sq, l, h, V = s.workload.training.global_batch_size, a.seq, a.num_layers, a.hidden, a.vocab
    return 96.0 * B * sq * l * h * h * (1 + sq / (6 * h) + V / (16 * l * h))


def metric_of(metric: str, s: Scenario, step_time_s: float) -> float:
    """The published metric a step time stands for."""
    if metric == "tflops_per_gpu_incl_recompute":
        return narayanan_flops(s) / (step_time_s * s.num_gpus) / 1e12
    if metric == "tflops_per_gpu":
        a = resolve(s.workload.model)
        flops = model_flops_per_token(a) * s.workload.training.global_batch_size * a.seq
        return flops / (step_time_s * s.num_gpus) / 1e12
    if metric == "tokens_per_s_per_gpu":
        a = resolve(s.workload.model)
        return s.workload.training.global_batch_size * a.seq / (step_time_s * s.num_gpus)
    if metric == "step_time_s":
        return step_time_s
    raise ValueError(f"unknown metric {metric!r} in the validation set")


def step_time(s: Scenario, eff: Efficiency = DEFAULT, engine: str = "analytical") -> float:
    if engine == "analytical":
        return estimate_step(s, eff).step_time
    return simulate(s, efficiency=eff, check_memory=False, engine=engine, campaign=False).step_time_s


def predict(row: dict, eff: Efficiency = DEFAULT, engine: str = "des", scenario: Scenario | None = None) -> Row:
    s = scenario or scenario_of(row)
    t = step_time(s, eff, engine)
    return Row(row["source"], row["run"], s.num_gpus, row["metric"], float(row["value"]),
               metric_of(row["metric"], s, t), t)


@dataclass
class Case:
    """One expressible published row with its scenario built once (validation/fit.py re-predicts it)."""

    row: dict
    scenario: Scenario

    @property
    def source(self) -> str:
        return self.row["source"]

    @property
    def in_fit(self) -> bool:
        """Whether the global efficiencies are fitted on this row: every expressible dense row. MoE
        rows are predicted (in-sample and leave-one-source-out alike) but not fitted on: their errors
        come from the MoE model (grouped GEMMs of small experts, dispatch, router and permutation
        kernels, host overhead), which the global dense efficiencies must not be bent to absorb."""
        return not resolve(self.scenario.workload.model).is_moe

    def predict(self, eff: Efficiency = DEFAULT, engine: str = "analytical") -> Row:
        return predict(self.row, eff, engine, self.scenario)


def cases(rows: list[dict] | None = None, progress=None) -> tuple[list[Case], list[Skipped]]:
    """Build each row's scenario once; rows the simulator cannot express come back as Skipped."""
    rows = load_rows() if rows is None else rows
    ok, skipped = [], []
    for i, row in enumerate(rows):
        reason = not_expressible(row)
        if reason:
            skipped.append(Skipped(row["source"], row["run"], reason))
        else:
            ok.append(Case(row, scenario_of(row)))
        if progress:
            progress(i + 1, len(rows))
    return ok, skipped


def run_all(eff: Efficiency = DEFAULT, engine: str = "analytical") -> list[Row]:
    """Every expressible published row, predicted."""
    return [c.predict(eff, engine) for c in cases()[0]]


def mape(rows: list[Row]) -> float:
    return sum(abs(r.error) for r in rows) / len(rows) if rows else float("nan")


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
