"""Cross-key checks of a workload against its cluster and the derived parallel layout.

Each failed check is a ConfigError naming where the offending value came from (the file, or the
--set / --gpus that wrote it), the key path, the value and what would be valid.
"""
from __future__ import annotations

import math

from simulator.config.loader import fail as _fail   # the key's source, with a file key's overrides
from simulator.config.cluster import ClusterConfig
from simulator.config.gpu import GPUSpec
from simulator.config.model_checks import check_fused_kernels, check_model_features
from simulator.config.pipeline_layout import LayoutError
from simulator.config.pipeline_layout import split as layout_split
from simulator.config.workload import WorkloadConfig
from simulator.errors import ConfigError
from simulator.model.arch import resolve
from simulator.model.precision import tensor_format

P = "parallelism."


def _divisors(n: int) -> str:
    small = [d for d in range(1, int(n**0.5) + 1) if n % d == 0] if n < 10**12 else [1]
    ds = sorted(set(small) | {n // d for d in small})
    return ", ".join(map(str, ds if len(ds) <= 12 else ds[:6] + ["..."] + ds[-3:]))


def _stage_layers(w: WorkloadConfig, pp: int, where) -> tuple[int, ...]:
    par, layers = w.parallelism, w.model.num_layers
    first, last = par.decoder_first_pipeline_num_layers, par.decoder_last_pipeline_num_layers
    if (first or last) and pp == 1:
        key = "decoder_first_pipeline_num_layers" if first else "decoder_last_pipeline_num_layers"
        _fail(where, P + key, "uneven stages need pipeline parallelism", first or last,
              "pipeline_model_parallel_size > 1")
    inner = pp - (first is not None) - (last is not None)
    rest = layers - (first or 0) - (last or 0)
    if first is None and last is None and pp > layers:
        _fail(where, P + "pipeline_model_parallel_size", f"exceeds num_layers={layers} (each stage needs a layer)",
              pp, f"at most {layers}, a divisor of {layers} ({_divisors(layers)})")
    if rest < inner or rest < 0:
        key = "decoder_first_pipeline_num_layers" if first is not None else "decoder_last_pipeline_num_layers"
        _fail(where, P + key, f"first + last stage layers ({(first or 0) + (last or 0)}) leave fewer than "
              f"one layer for each of the other {inner} stages of num_layers={layers}", first or last,
              f"first + last at most {layers - inner}")
    if inner == 0:
        if rest != 0:
            _fail(where, P + "decoder_first_pipeline_num_layers", "first + last stage layers must "
                  "equal num_layers when there are two stages", (first, last), f"a sum of {layers}")
        return (first, last)
    if rest <= 0 or rest % inner:
        if first is None and last is None:
            _fail(where, P + "pipeline_model_parallel_size", f"does not divide num_layers={layers}",
                  pp, f"a divisor of {layers} ({_divisors(layers)}), or set "
                  "decoder_first/last_pipeline_num_layers for uneven stages")
        _fail(where, P + "decoder_first_pipeline_num_layers", f"the remaining {rest} layers do not "
              f"split evenly over the other {inner} stages", (first, last), "a split that divides")
    mid = rest // inner
    return tuple(([first] if first is not None else []) + [mid] * inner + ([last] if last is not None else []))


def _layout_chunks(w: WorkloadConfig, pp: int, where):
    """Decoder layers of every rank's model chunks (and the MTP rank) from pipeline_model_parallel_layout."""
    par = w.parallelism
    key = P + "pipeline_model_parallel_layout"
    for other in ("decoder_first_pipeline_num_layers", "decoder_last_pipeline_num_layers"):
        if getattr(par, other) is not None:
            _fail(where, P + other, "conflicts with pipeline_model_parallel_layout (the layout places "
                  "every layer)", getattr(par, other), f"no {other}, or no layout")
    try:
        sp = layout_split(par.pipeline_model_parallel_layout, pp, w.model.num_layers, w.model.mtp_num_layers)
    except LayoutError as e:
        _fail(where, key, str(e), par.pipeline_model_parallel_layout,
              "a Megatron-Core layout such as 'Et*4|(t*4|)*14tmL' with PP x VPP stages, num_layers t, "
              "mtp_num_layers m, E first and L last")
    if pp == 1 and sp.vpp > 1:
        _fail(where, key, f"places {sp.vpp} pipeline stages, but pipeline_model_parallel_size is 1",
              par.pipeline_model_parallel_layout, "one stage ('Et*N L' without '|'), or pipeline parallelism")
    vpp = par.virtual_pipeline_model_parallel_size
    if vpp is not None and vpp != sp.vpp:
        _fail(where, P + "virtual_pipeline_model_parallel_size", f"disagrees with the layout's "
              f"{sp.vpp * pp} stages on PP={pp} ({sp.vpp} virtual stages per rank)", vpp,
              f"{sp.vpp}, or leave it out (the layout sets it)")
    return sp


def _zero_stage(w: WorkloadConfig, where) -> int:
    par = w.parallelism
    if par.zero_stage is None:
        return 1 if par.distributed_optimizer else 0
    if par.distributed_optimizer and par.zero_stage != 1:
        _fail(where, P + "zero_stage", "conflicts with distributed_optimizer: true (which is ZeRO-1)",
              par.zero_stage, "1, or distributed_optimizer: false")
    return par.zero_stage


def _check_sharding(w: WorkloadConfig, zero: int, dp: int, where) -> None:
    par = w.parallelism
    if par.rank_order != "tp-cp-dp-pp" and par.expert_model_parallel_size > 1:
        _fail(where, P + "rank_order", "expert parallelism is carved out of the data-parallel ranks "
              "next to the tensor- and context-parallel ones, which only Megatron's order keeps together",
              par.rank_order, "tp-cp-dp-pp with expert_model_parallel_size > 1")
    if par.grad_reduce_op == "all_reduce" and zero != 1:
        _fail(where, P + "grad_reduce_op", "all_reduce chooses the gradient collective of ZeRO-1 / the "
              "distributed optimizer (ZeRO-0 always all-reduces; ZeRO-2/3 reduce-scatter every microbatch)",
              par.grad_reduce_op, "reduce_scatter, or zero_stage: 1 / distributed_optimizer: true")
    if not par.reshard_after_forward and zero < 3:
        _fail(where, P + "reshard_after_forward", "only ZeRO-3 / FSDP gathers parameters (zero_stage 3)",
              par.reshard_after_forward, "true, or zero_stage: 3")
    d = par.data_parallel_shard_degree
    if d is not None:
        if zero < 1:
            _fail(where, P + "data_parallel_shard_degree", "sharding needs ZeRO (zero_stage >= 1 or "
                  "distributed_optimizer: true)", d, "no data_parallel_shard_degree, or a ZeRO stage")
        if dp % d:
            _fail(where, P + "data_parallel_shard_degree", f"does not divide the data-parallel size {dp}",
                  d, f"a divisor of {dp} ({_divisors(dp)})")


def _check_recompute(w: WorkloadConfig, stage_layers: tuple[int, ...], vpp: int, where) -> None:
    par = w.parallelism
    for key in ("recompute_method", "recompute_num_layers"):
        value = getattr(par, key)
        if value is not None and par.recompute_granularity != "full":
            _fail(where, P + key, "applies to full recomputation only (Megatron)", value,
                  "recompute_granularity: full, or no " + key)
    if par.recompute_matmuls != "none":
        if par.recompute_granularity != "selective_op":
            _fail(where, P + "recompute_matmuls", "applies to op-level selective recomputation only",
                  par.recompute_matmuls, "recompute_granularity: selective_op, or recompute_matmuls: none")
        m = w.model
        if m.moe is not None or m.multi_latent_attention is not None:
            _fail(where, P + "recompute_matmuls", "every_second follows torchtitan's dense-block matmul order "
                  "(q, k, v, output, MLP); this model has " + ("MoE layers" if m.moe is not None else
                                                              "latent attention"),
                  par.recompute_matmuls, "none for this model")
    _check_recompute_modules(w, where)
    n = par.recompute_num_layers
    if n is not None:
        chunk = min(stage_layers) // vpp if vpp > 1 else min(stage_layers)
        if (par.recompute_method or "uniform") == "block" and n > max(chunk, 1):
            _fail(where, P + "recompute_num_layers", f"block recomputation counts layers of one model chunk "
                  f"({chunk} on the smallest)", n, f"at most {chunk}")
        if n > w.model.num_layers:
            _fail(where, P + "recompute_num_layers", f"exceeds num_layers={w.model.num_layers}", n,
                  f"at most {w.model.num_layers}")


def _check_recompute_modules(w: WorkloadConfig, where) -> None:
    """Megatron-Core's recompute_modules: selective recomputation only, each module once, and each
    one a part this model has (a module with nothing to rerun is a misconfiguration, not a no-op)."""
    par, key = w.parallelism, P + "recompute_modules"
    mods = par.recompute_modules
    if mods is None:
        return
    if par.recompute_granularity != "selective":
        # named on the granularity: a --set of it is the usual cause, the modules sit in the file
        _fail(where, P + "recompute_granularity", f"is {par.recompute_granularity}, but recompute_modules "
              f"{mods} names modules of selective recomputation (Megatron-Core)", par.recompute_granularity,
              "selective, or clear the modules as well (--set parallelism.recompute_modules=null)")
    if not mods:
        _fail(where, key, "is empty", mods, "at least one module, or no recompute_modules (core_attn)")
    twice = _repeated(mods)
    if twice:
        _fail(where, key, f"names {', '.join(twice)} more than once", mods, "each module once")
    a = resolve(w.model)
    lacks = {"moe_act": (not a.is_moe, "no MoE layers"), "moe": (not a.is_moe, "no MoE layers"),
             "mla_up_proj": (not a.mla, "no multi-head latent attention"),
             "shared_experts": (not a.shared_expert_ffn, "no shared experts"),
             "mlp": (a.num_moe_layers >= a.num_layers, "no dense MLP layers (every layer is MoE)")}
    for m in mods:
        missing, why = lacks.get(m, (False, ""))
        if missing:
            _fail(where, key, f"{m} has nothing to recompute: the model has {why}", m,
                  "modules this model has: " + ", ".join(x for x in ("core_attn", "layernorm", *lacks)
                                                          if not lacks.get(x, (False,))[0]))


def _check_offload(w: WorkloadConfig, pp: int, where) -> None:
    par = w.parallelism
    k = par.cpu_offloading_num_layers
    if par.cpu_offloading:
        if pp > 1:
            _fail(where, P + "cpu_offloading", "Megatron does not support activation offloading with "
                  "pipeline parallelism", par.cpu_offloading,
                  "false, or pipeline_model_parallel_size: 1")
        if not 0 < k < w.model.num_layers:
            _fail(where, P + "cpu_offloading_num_layers", f"offloading needs between 1 and num_layers - 1 = "
                  f"{w.model.num_layers - 1} layers (Megatron)", k, f"1 ... {w.model.num_layers - 1}")
    elif k:
        _fail(where, P + "cpu_offloading_num_layers", "is set but cpu_offloading is false", k,
              "cpu_offloading: true, or 0")


def _grad_dtype(w: WorkloadConfig, where) -> str:
    from simulator.model.memory import default_grad_dtype

    t = w.training
    g = t.grad_dtype or default_grad_dtype(t.precision)
    if (g == "fp16") != (t.precision == "fp16"):
        _fail(where, "training.grad_dtype", f"{g} gradients do not go with {t.precision} training", g,
              "fp16 with fp16, or fp32/bf16 with bf16 and fp8")
    return g


def _check_model(w: WorkloadConfig, where) -> None:
    m = w.model
    check_model_features(m, where)
    if m.kv_channels is None and m.hidden_size % m.num_attention_heads:
        _fail(where, "model.num_attention_heads", f"does not divide hidden_size={m.hidden_size}",
              m.num_attention_heads, "a divisor of hidden_size, or set kv_channels")
    groups = m.num_query_groups or m.num_attention_heads
    if m.num_attention_heads % groups:
        _fail(where, "model.num_query_groups", f"does not divide num_attention_heads={m.num_attention_heads}",
              groups, "a divisor of num_attention_heads")
    if m.moe and m.moe.moe_router_topk > m.moe.num_experts:
        _fail(where, "model.moe.moe_router_topk", f"exceeds num_experts={m.moe.num_experts}",
              m.moe.moe_router_topk, "at most num_experts")
    t = w.training
    if t.train_tokens is not None and t.train_iters is not None:
        _fail(where, "training.train_iters", "give train_tokens or train_iters, not both",
              t.train_iters, "only one of the two")


def tp_misfit(arch, tp: int) -> tuple[str, int] | None:
    """The model dimension (key, size) that tensor parallelism ``tp`` must divide and does not."""
    for key, n in (("num_attention_heads", arch.heads), ("num_query_groups", arch.query_groups)):
        if n % tp:
            return key, n
    return None


def ep_misfit(arch, ep: int) -> str | None:
    """Why expert parallelism ``ep`` cannot split this model: "dense" (no MoE layers), "experts"
    (it does not divide them), or None."""
    if ep > 1 and not arch.is_moe:
        return "dense"
    if arch.is_moe and arch.num_experts % ep:
        return "experts"
    return None


def layout_recompute_modules(granularity: str, modules) -> tuple[str, ...]:
    """The Megatron-Core modules a layout reruns: the given ones (default core_attn) under
    selective recomputation, none under any other granularity."""
    return tuple(modules or ("core_attn",)) if granularity == "selective" else ()


def _repeated(items: list) -> list:
    """The items named more than once, sorted."""
    return sorted({x for x in items if items.count(x) > 1})


def _check_parallel(w: WorkloadConfig, where) -> None:
    m, par = w.model, w.parallelism
    arch = resolve(m)
    tp, cp, ep = par.tensor_model_parallel_size, par.context_parallel_size, par.expert_model_parallel_size
    misfit = tp_misfit(arch, tp)
    if misfit:
        key, n = misfit
        _fail(where, P + "tensor_model_parallel_size", f"does not divide {key}={n}",
              tp, f"a divisor of {n} ({_divisors(n)})")
    if arch.ffn % tp and arch.num_moe_layers < arch.num_layers:   # dense layers' MLP
        _fail(where, P + "tensor_model_parallel_size", f"does not divide ffn_hidden_size={arch.ffn}",
              tp, f"a divisor of {arch.ffn} ({_divisors(arch.ffn)})")
    if arch.is_moe:
        etp = par.expert_tensor_parallel_size or tp
        key = "expert_tensor_parallel_size" if par.expert_tensor_parallel_size else "tensor_model_parallel_size"
        if arch.moe_ffn % etp:
            _fail(where, P + key, f"does not divide model.moe.moe_ffn_hidden_size={arch.moe_ffn} (each "
                  "expert's MLP is split over the expert TP ranks)", etp,
                  f"a divisor of {arch.moe_ffn} ({_divisors(arch.moe_ffn)})")
        if arch.shared_expert_ffn % tp:
            _fail(where, P + "tensor_model_parallel_size", "does not divide "
                  f"model.moe.moe_shared_expert_intermediate_size={arch.shared_expert_ffn}", tp,
                  f"a divisor of {arch.shared_expert_ffn} ({_divisors(arch.shared_expert_ffn)})")
    if cp > 1 and arch.seq % (2 * cp):
        _fail(where, P + "context_parallel_size", f"2 x context_parallel_size must divide seq_length={arch.seq} "
              "(causal load balancing splits the sequence into 2 x CP chunks)", cp, "a CP with seq % (2*CP) == 0")
    if cp > 1 and par.cp_comm_type == "a2a" and (arch.heads // tp) % cp:
        _fail(where, P + "cp_comm_type", f"a2a (Ulysses) context parallelism shards the {arch.heads // tp} "
              f"attention heads of a TP rank over context_parallel_size={cp}, which does not divide them",
              par.cp_comm_type, "p2p or all_gather, or a CP that divides num_attention_heads / TP")
    why = ep_misfit(arch, ep)
    if why == "dense":
        _fail(where, P + "expert_model_parallel_size", "expert parallelism needs an MoE model (model.moe)",
              ep, "1 for a dense model")
    if why == "experts":
        _fail(where, P + "expert_model_parallel_size", f"does not divide num_experts={arch.num_experts}",
              ep, f"a divisor of {arch.num_experts} ({_divisors(arch.num_experts)})")


def derive_layout(w: WorkloadConfig, c: ClusterConfig, gpu: GPUSpec, where, cwhere):
    from simulator.config.scenario import Layout

    _check_model(w, where)
    _check_parallel(w, where)
    par, t = w.parallelism, w.training
    tp, pp, cp, ep = (par.tensor_model_parallel_size, par.pipeline_model_parallel_size,
                      par.context_parallel_size, par.expert_model_parallel_size)
    mp = tp * pp * cp
    capacity = c.num_nodes * c.node.gpus_per_node
    if w.num_gpus is not None:
        num_gpus = w.num_gpus
        if num_gpus % mp:
            _fail(where, "num_gpus", f"is not a multiple of TP x PP x CP = {tp} x {pp} x {cp} = {mp}",
                  num_gpus, f"a multiple of {mp}")
        dp = num_gpus // mp
        if par.data_parallel_size != "auto" and par.data_parallel_size != dp:
            _fail(where, P + "data_parallel_size", f"disagrees with num_gpus / (TP x PP x CP) = {dp}",
                  par.data_parallel_size, f"{dp} or 'auto'")
    elif par.data_parallel_size != "auto":
        dp = par.data_parallel_size
        num_gpus = dp * mp
    else:
        raise ConfigError("cannot size the job: num_gpus is not set and data_parallel_size is 'auto'",
                          source=where(("num_gpus",)), path="num_gpus",
                          expected="num_gpus in the workload, --gpus N, or a numeric data_parallel_size")
    if num_gpus > capacity:
        nodes_from = cwhere(("num_nodes",))
        if nodes_from.startswith("--") and not where(("num_gpus",)).startswith("--"):
            # the flag that shrank the cluster is to blame, not the workload's num_gpus
            raise ConfigError(f"the cluster has {capacity} GPUs ({c.num_nodes} nodes x {c.node.gpus_per_node}) "
                              f"but the job needs num_gpus={num_gpus} ({where(('num_gpus',))})",
                              source=nodes_from, path="num_nodes", value=c.num_nodes,
                              expected=f"at least {-(-num_gpus // c.node.gpus_per_node)} nodes")
        raise ConfigError(f"the job needs {num_gpus} GPUs but the cluster has {capacity} "
                          f"({c.num_nodes} nodes x {c.node.gpus_per_node})", source=where(("num_gpus",)),
                          path="num_gpus", value=num_gpus,
                          expected=f"at most {capacity}, or a bigger cluster (--set cluster.num_nodes=...)")
    if par.dp_comm_sms and par.dp_comm_sms * 2 > (gpu.sm_count or 132):
        _fail(where, P + "dp_comm_sms", f"takes more than half of the GPU's {gpu.sm_count or 132} SMs "
              "from the compute the collectives hide behind", par.dp_comm_sms,
              f"at most {(gpu.sm_count or 132) // 2} (NCCL runs one thread block per channel, 32 or 64 at most)")
    etp = par.expert_tensor_parallel_size or tp
    if par.expert_tensor_parallel_size is not None:
        arch = resolve(w.model)
        if not arch.is_moe:
            _fail(where, P + "expert_tensor_parallel_size", "expert tensor parallelism needs an MoE model "
                  "(model.moe)", etp, "no expert_tensor_parallel_size for a dense model")
        if arch.moe_ffn % etp or (arch.shared_expert_ffn and arch.shared_expert_ffn % tp):
            _fail(where, P + "expert_tensor_parallel_size", f"does not divide the expert MLP width "
                  f"{arch.moe_ffn}", etp, f"a divisor of {arch.moe_ffn}")
    if (tp * cp * dp) % (ep * etp):
        key = "expert_tensor_parallel_size" if par.expert_tensor_parallel_size is not None else \
            "expert_model_parallel_size"
        _fail(where, P + key, f"EP x ETP = {ep} x {etp} does not divide TP x CP x DP = {tp} x {cp} x {dp} "
              "(MoE parallel folding: the expert groups tile each pipeline stage's GPUs)", ep if key.startswith(
                  "expert_model") else etp,
              "expert_model_parallel_size x expert_tensor_parallel_size dividing "
              f"{tp * cp * dp}")
    if t.global_batch_size % (par.micro_batch_size * dp):
        _fail(where, "training.global_batch_size",
              f"is not divisible by micro_batch_size x DP = {par.micro_batch_size} x {dp}",
              t.global_batch_size, f"a multiple of {par.micro_batch_size * dp}"
              + _near_counts(t.global_batch_size // par.micro_batch_size if t.global_batch_size >= par.micro_batch_size
                             else 0, tp * pp * cp, tp * pp * cp * dp))
    m = t.global_batch_size // (par.micro_batch_size * dp)
    chunks: tuple[tuple[int, ...], ...] = ()
    mtp_stage = -1
    if par.pipeline_model_parallel_layout is not None:
        sp = _layout_chunks(w, pp, where)
        chunks, mtp_stage = sp.chunks, sp.mtp_rank
        stage_layers = tuple(sum(c) for c in chunks)
        vpp = len(chunks[0])
    else:
        stage_layers = _stage_layers(w, pp, where)
        vpp = par.virtual_pipeline_model_parallel_size or 1
    schedule = par.pipeline_schedule or ("interleaved_1f1b" if vpp > 1 else "1f1b")
    if vpp > 1:
        if pp == 1:
            _fail(where, P + "virtual_pipeline_model_parallel_size", "needs pipeline parallelism", vpp,
                  "pipeline_model_parallel_size > 1")
        uneven = (par.decoder_first_pipeline_num_layers or par.decoder_last_pipeline_num_layers)
        # uneven first/last stages may leave one chunk with only the embedding or the loss
        # (Megatron's account_for_embedding/loss_in_pipeline_split): at most their layers + 1 chunks
        if chunks:
            pass   # the layout gives every chunk's layers
        elif min(stage_layers) + (1 if uneven else 0) < vpp or (not uneven and any(n % vpp for n in stage_layers)):
            _fail(where, P + "virtual_pipeline_model_parallel_size",
                  f"does not divide the layers per stage {sorted(set(stage_layers))}", vpp,
                  "a divisor of the layers per pipeline stage (with uneven first/last stages: at most "
                  "the smallest stage's layers + 1)")
        if m % pp:
            vkey = "pipeline_model_parallel_layout" if chunks else "virtual_pipeline_model_parallel_size"
            _fail(where, P + vkey, f"the interleaved schedule ({vpp} virtual stages per rank) needs the "
                  f"number of microbatches ({m}) to be a multiple of PP={pp}",
                  par.pipeline_model_parallel_layout if chunks else vpp,
                  "a global batch giving a multiple of PP microbatches, or no interleaving")
        if schedule != "interleaved_1f1b":
            _fail(where, P + "pipeline_schedule", "virtual stages need the interleaved schedule",
                  schedule, "interleaved_1f1b")
    elif schedule == "interleaved_1f1b":
        _fail(where, P + "pipeline_schedule", "interleaved_1f1b needs virtual_pipeline_model_parallel_size > 1",
              schedule, "1f1b or gpipe, or set virtual stages")
    zero = _zero_stage(w, where)
    _check_sharding(w, zero, dp, where)
    _check_recompute(w, stage_layers, vpp, where)
    _check_offload(w, pp, where)
    grad_dtype = _grad_dtype(w, where)
    if gpu.peak(t.precision) is None:
        _fail(where, "training.precision", f"the cluster's GPU ({gpu.name}) has no "
              f"{tensor_format(t.precision).upper()} tensor cores (no such peak in its catalog entry)",
              t.precision, f"one of the precisions {gpu.name} has: {', '.join(gpu.precisions())}")
    if t.sparsity_2to4 and gpu.sparsity_2to4_speedup <= 1.0:
        _fail(where, "training.sparsity_2to4", f"the cluster's GPU ({gpu.name}) has no 2:4 sparse tensor "
              "cores (its sparsity_2to4_speedup is not above 1)", t.sparsity_2to4,
              "false on this GPU, or a GPU with sparse tensor cores (A100, H100, ...)")
    if t.cuda_graph_scope:
        scope = t.cuda_graph_scope
        if t.cuda_graph_impl in ("none", "full_iteration"):
            _fail(where, "training.cuda_graph_scope", f"names what cuda_graph_impl local / transformer_engine "
                  f"capture; with cuda_graph_impl {t.cuda_graph_impl} it would be ignored", scope,
                  "cuda_graph_impl: transformer_engine (or local), or no cuda_graph_scope")
        twice = _repeated(scope)
        if twice:
            _fail(where, "training.cuda_graph_scope", f"names {', '.join(twice)} more than once", scope,
                  "each scope once")
        moe_scopes = [s for s in scope if s.startswith("moe")]
        if moe_scopes and w.model.moe is None:
            _fail(where, "training.cuda_graph_scope", f"{', '.join(moe_scopes)}: the model has no MoE layers",
                  scope, "attn and mlp on a dense model")
    if t.attention_kernel != "fused" and not t.use_flash_attn:
        _fail(where, "training.attention_kernel", f"{t.attention_kernel} is a fused attention kernel, but "
              "use_flash_attn is false (the unfused path materialises the scores)", t.attention_kernel,
              "fused (the default), or use_flash_attn: true")
    if t.attention_kernel == "flash2" and gpu.vendor not in ("nvidia", "amd"):
        _fail(where, "training.attention_kernel", f"FlashAttention-2 is a GPU kernel (CUDA, ROCm); the "
              f"cluster's {gpu.name} is a {gpu.vendor} part", t.attention_kernel,
              "fused (the default) on this accelerator")
    check_fused_kernels(w, gpu, where)
    if t.optimizer.hessian_interval is not None and t.optimizer.kind != "sophia":
        _fail(where, "training.optimizer.hessian_interval", f"optimizer {t.optimizer.kind} estimates no "
              "Hessian", t.optimizer.hessian_interval, "no hessian_interval, or kind: sophia")
    layout = Layout(tp=tp, pp=pp, vpp=vpp, cp=cp, ep=ep, dp=dp, micro_batch_size=par.micro_batch_size,
                    num_microbatches=m, sequence_parallel=par.sequence_parallel and tp > 1,
                    zero_stage=zero, recompute=par.recompute_granularity, schedule=schedule,
                    stage_layers=stage_layers, etp=etp if etp != tp else 0,
                    shard_degree=par.data_parallel_shard_degree or 0,
                    reshard_after_forward=par.reshard_after_forward, grad_dtype=grad_dtype,
                    rank_order=par.rank_order,
                    recompute_method=par.recompute_method, recompute_num_layers=par.recompute_num_layers,
                    recompute_modules=layout_recompute_modules(par.recompute_granularity, par.recompute_modules),
                    offload_layers=par.cpu_offloading_num_layers if par.cpu_offloading else 0,
                    chunks=chunks, mtp_stage=mtp_stage)
    return num_gpus, layout


def _near_counts(sequences: int, model_parallel: int, gpus: int) -> str:
    """", or num_gpus 256 or 512 (DP dividing the batch)": the GPU counts nearest ``gpus`` whose DP
    divides the batch's ``sequences`` per micro batch, for the error of a count that does not."""
    if sequences <= 0 or sequences > 10**12:
        return ""
    small = [d for d in range(1, math.isqrt(sequences) + 1) if sequences % d == 0]
    counts = sorted({model_parallel * d for q in small for d in (q, sequences // q)})
    below = [n for n in counts if n < gpus][-1:]
    above = [n for n in counts if n > gpus][:1]
    near = below + above
    return f", or num_gpus {' or '.join(str(n) for n in near)} (DP dividing the batch)" if near else ""
