"""A published validation row (a CSV record) as trainsim inputs: the workload keys it stands for and
the bundled topology of its system, with each source's software facts (data/SOURCES.md)."""
from __future__ import annotations

import re
from pathlib import Path

from simulator.errors import ConfigError

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
# torchtitan's stack (the three torchtitan-run sources below): FSDP2 with fp32 gradient reduction (its
# default mixed_precision_reduce), prefetching its collectives behind compute, SDPA's flash backend
_TORCHTITAN_TRAINING = {"use_flash_attn": True, "attention_kernel": "flash2"}
_TORCHTITAN_PAR = {"overlap_grad_reduce": True, "overlap_param_gather": True}
SOURCES = {
    "narayanan2021-t1": ("dgx-a100-selene.yaml", {"use_flash_attn": False}, {"overlap_grad_reduce": False}),
    "narayanan2021-t2": ("dgx-a100-selene.yaml", {"use_flash_attn": False}, {"overlap_grad_reduce": False}),
    "megatron-core-h100": ("dgx-h100-superpod.yaml", {"use_flash_attn": True},
                           {"distributed_optimizer": True, "sequence_parallel": True,
                            "tp_comm_overlap": True, "overlap_grad_reduce": True, "overlap_param_gather": True}),
    # DeepSpeed's BF16_Optimizer under the pipeline engine (workloads/bloom-176b.yaml cites the code):
    # fp32 gradients accumulated by a cast-and-add pass after every micro-step, all-reduced unsharded
    # after the last microbatch, the updated bf16 shards all-gathered after the step
    "bigscience-tr11": ("jean-zay-a100.yaml", {"use_flash_attn": False, "cuda_launch_blocking": True},
                        {"overlap_grad_reduce": False, "overlap_param_gather": False,
                         "grad_reduce_op": "all_reduce", "grad_accumulation": "unfused_cast"}),
    # Llama 3 405B, Table 4 (Dubey et al. 2024): Meta's stack as sections 3.3.2-3.3.4 describe it,
    # the same settings as workloads/llama3-405b.yaml (data/SOURCES.md)
    "llama3-t4": ("meta-h100-roce-24k.yaml", {"use_flash_attn": True},   # fp32 gradients: the default
                  {"reshard_after_forward": False, "rank_order": "tp-cp-pp-dp", "cp_comm_type": "all_gather",
                   "dp_comm_sms": 20}),
    # torchtitan's published FSDP2 benchmarks on Meta's Grand Teton H100 96GB (pytorch/torchtitan
    # docs/performance.md @ eaea6f6a): FSDP2 with fp32 gradient reduction (torchtitan's default
    # mixed_precision_reduce), prefetching its collectives behind compute; SDPA's flash backend,
    # FlashAttention-2: torchtitan's context-parallel runs restrict SDPA to the flash and
    # memory-efficient backends (torchtitan/utils.py create_context_parallel_ctx @ 9dec370, "TODO:
    # support cuDNN backend"), and the other runs take SDPA's default, which that December 2024 torch
    # no longer led with cuDNN on H100 (opt-in since pytorch/pytorch#138522; #142132 measures the
    # default at FA2 speed on 2.6.0.dev20241204)
    "torchtitan-2024": ("grand-teton-h100-96gb.yaml", _TORCHTITAN_TRAINING, _TORCHTITAN_PAR),
    # torchtitan's June 2025 async-TP benchmarks on the same hosts (benchmarks/
    # asyncTP_llama3_h100_2025-06_torchtitan.md @ 2887250b): the same stack; its SDPA puts
    # FlashAttention first on H100 and cuDNN only on B200 (torchtitan/models/attention.py @ 820504e2)
    "torchtitan-2025": ("grand-teton-h100-96gb.yaml", _TORCHTITAN_TRAINING, _TORCHTITAN_PAR),
    # Trainy's torchtitan run on WhiteFiber H200 hosts (benchmarks/llama3-8b_h200_202506_trainy-
    # whitefiber.md @ 4a61bd87): torchtitan's stack as above, on a GPU whose peak is published
    "trainy-h200-2025": ("whitefiber-h200.yaml", _TORCHTITAN_TRAINING, _TORCHTITAN_PAR),
    "nemo-24.07": (None, _MODERN_TRAINING, _MODERN_PAR),
    "nemo-long-sequence": (None, _MODERN_TRAINING, _MODERN_PAR),
    "megatron-bridge": (None, {**_MODERN_TRAINING, "cross_entropy_loss_fusion": True}, _MODERN_PAR),
    # the 26.04.01 tables' layouts that no earlier table printed, held out (runner.CHECK_ONLY_SOURCES):
    # the same stack, recipes at Megatron-Bridge v0.4.2 (data/SOURCES.md)
    "megatron-bridge-26.04.01": (None, {**_MODERN_TRAINING, "cross_entropy_loss_fusion": True}, _MODERN_PAR),
    # the 26.06 table's new layouts (NeMo 26.06 = Megatron-Bridge v0.5.0), held out the same way
    "megatron-bridge-26.06": (None, {**_MODERN_TRAINING, "cross_entropy_loss_fusion": True}, _MODERN_PAR),
}
# Megatron-Bridge's performance runs fuse the cross-entropy with Transformer Engine's kernel: the
# model providers default cross_entropy_loss_fusion = True (src/megatron/bridge/models/gpt_provider.py
# @ 1c43b392; only the finetune recipes turn it off) and the performance overrides set
# cross_entropy_fusion_impl = "te" (scripts/performance/utils/helpers.py set_common_perf_overrides
# @ 1c43b392, utils/overrides.py @ 9c9dd848). NeMo 24.07 / 24.03 build Megatron-Core 0.8's
# TransformerConfig, whose default is False, and their launcher configs do not set it.
# the sources of modern.csv (Megatron-Core stacks of 2024-26: distributed optimizer, TP overlap per row)
MEGATRON_BRIDGE_SOURCES = ("megatron-bridge", "megatron-bridge-26.04.01", "megatron-bridge-26.06")
MODERN_SOURCES = ("nemo-24.07", "nemo-long-sequence", *MEGATRON_BRIDGE_SOURCES)
TORCHTITAN_SOURCES = ("torchtitan-2024", "torchtitan-2025", "trainy-h200-2025")
# modern.csv's cluster_hint -> the bundled topology of that system
SYSTEMS = {
    "DGX H100, 8x400G IB": "dgx-h100-superpod.yaml",
    "DGX B200, 8x400G IB": "dgx-b200.yaml",
    "DGX B300": "dgx-b300.yaml",
    "GB200 NVL72": "gb200-nvl72.yaml",
    "GB300 NVL72": "gb300-nvl72.yaml",
}
# the sources whose rows predate today's stacks (dropout, 2021 DeepSpeed ZeRO-3)
ERA_2021 = ("narayanan2021-t1", "narayanan2021-t2", "megatron-core-h100", "bigscience-tr11")


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
        yarn = re.search(r"YaRN RoPE factor (\d+(?:\.\d+)?)", row["notes"])
        if yarn:    # GPT-OSS's YaRN scaling, its exponents unset (data/SOURCES.md)
            model["yarn_rotary_scaling_factor"] = float(yarn[1])
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
        if row.get("moe_dispatcher", "").strip():   # from the release's recipe (data/SOURCES.md)
            moe["moe_token_dispatcher_type"] = row["moe_dispatcher"].strip()
        if row.get("moe_fused_grouped_mlp") == "true":   # the recipe's cutedsl_fused_grouped_mlp
            moe["moe_fused_grouped_mlp"] = True
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
    if row["source"] in MODERN_SOURCES:
        if zero == 1:
            parallel["distributed_optimizer"] = True   # Megatron's distributed optimizer
        parallel["tp_comm_overlap"] = row["tp_comm_overlap"] == "true"
        if row.get("moe_a2a_overlap") == "true":
            parallel["overlap_moe_expert_parallel_comm"] = True
    elif row["source"] in TORCHTITAN_SOURCES:
        parallel["tp_comm_overlap"] = row["tp_comm_overlap"] == "true"   # async TP, as the row says
        if row["recompute"] == "selective_op":   # torchtitan's op policy: every second mm reruns too
            parallel["recompute_matmuls"] = "every_second"
        if int(row["pp"]) > 1:   # FSDP2 keeps a stage's parameters gathered across its microbatches
            # (torchtitan/parallelisms/parallelize_llama.py apply_fsdp @ 9dec370: reshard_after_forward
            # False when PP is on, "to avoid per-microbatch all-gathers")
            parallel["reshard_after_forward"] = False
    if row.get("recompute_modules", "").strip():   # Megatron-Core's names, from the release's recipe
        parallel["recompute_modules"] = row["recompute_modules"].strip().split("+")
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
    if row["source"] in MEGATRON_BRIDGE_SOURCES and precision == "fp8":
        # the 26.02 and 26.04.01 tables print "FP8" without its scaling; those releases' FP8 presets
        # are per-tensor current scaling (scripts/performance/configs @ 9c9dd848 (v0.3.1) and
        # @ c8101293 (v0.4.2): ..._FP8_CS_V1 / _V2 presets, no other FP8 recipe)
        precision = "fp8_cs"
    return {
        "name": row["run"], "num_gpus": int(row["num_gpus"]), "model": _model_of(row),
        "training": {"global_batch_size": int(row["global_batch_size"]), "precision": precision,
                     "train_iters": 1, **training_extra, **_cuda_graphs(row.get("cuda_graphs", "")),
                     **({"kernel_fusion": row["kernel_fusion"]} if row.get("kernel_fusion", "").strip() else {}),
                     **({"fp8_attention": True} if row.get("fp8_attention") == "true" else {})},
        "parallelism": parallel,
    }


def cluster_file_of(row: dict) -> Path:
    name = SOURCES[row["source"]][0] or SYSTEMS.get(row["cluster_hint"])
    if name is None:
        raise ConfigError("no bundled topology for this system", source="validation data",
                          path=f"{row['run']}.cluster_hint", value=row["cluster_hint"],
                          expected=", ".join(SYSTEMS))
    return TOPOLOGIES / name
