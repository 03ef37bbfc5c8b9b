"""parallelism.recompute_modules: Megatron-Core's selective recomputation by module (core_attn,
layernorm, moe_act, mla_up_proj, mlp, moe, shared_experts), by hand and end to end."""
import pytest

from simulator import load_scenario
from simulator.cost import comm
from simulator.cost.compute import op_time, quantize_ops
from simulator.cost.efficiency import DEFAULT
from simulator.cost.stage import _layer, _layer_ops, shard_of
from simulator.cost.step import estimate_step
from simulator.model.arch import resolve
from simulator.model.flops import attention_fwd_flops_per_token, recompute_flops_per_token
from simulator.model.memory import activation_bytes_per_layer
from simulator.simulate import memory_of
from tests.conftest import WORKLOADS

SEL = "parallelism.recompute_granularity=selective"


def _scenario(workload: str, *sets: str):
    return load_scenario(WORKLOADS / workload, overrides=list(sets))


def _layer_times(s, moe: bool):
    a, sh = resolve(s.workload.model), shard_of(s)
    tiers = comm.tiers_of(s.cluster, s.gpu, DEFAULT, s.num_gpus)
    ops = list(_layer_ops(a, sh, moe))
    fw = {o.name: op_time(o, s.gpu, s.workload.training.precision, DEFAULT) for o in ops}
    return a, ops, fw, _layer(a, s, sh, DEFAULT, tiers, moe)


def test_selective_without_modules_is_the_core_attention():
    """Megatron-Core's default for selective recomputation is ["core_attn"]: the same step, memory
    and recomputed FLOPs whether the list is given or not."""
    plain = _scenario("llama3-8b.yaml", SEL)
    listed = _scenario("llama3-8b.yaml", SEL, "parallelism.recompute_modules=[core_attn]")
    assert plain.layout.recompute_modules == listed.layout.recompute_modules == ("core_attn",)
    assert estimate_step(plain).step_time == estimate_step(listed).step_time
    assert memory_of(plain).total == memory_of(listed).total
    a = resolve(plain.workload.model)
    assert recompute_flops_per_token(a, "selective") == attention_fwd_flops_per_token(a)
    # other granularities carry no modules
    assert _scenario("llama3-8b.yaml").layout.recompute_modules == ()


def test_layernorm_reruns_the_two_norms_by_hand():
    s = _scenario("llama3-8b.yaml", SEL, "parallelism.recompute_modules=[layernorm]")
    _, _, fw, st = _layer_times(s, moe=False)
    assert st.recompute == pytest.approx(fw["input_norm"] + fw["post_attn_norm"])


def test_mlp_reruns_the_dense_mlp_and_its_tp_half_by_hand():
    s = _scenario("llama3-70b.yaml", SEL, "parallelism.recompute_modules=[mlp]")
    assert s.layout.tp > 1
    a, ops, fw, st = _layer_times(s, moe=False)
    mlp = sum(t for name, t in fw.items() if name in ("post_attn_norm", "fc1", "activation", "fc2"))
    base = _scenario("llama3-70b.yaml")
    _, _, _, plain = _layer_times(base, moe=False)
    tp_f = plain.tp / 2          # forward half of the layer's TP time (no overlap in this workload)
    assert not base.workload.parallelism.tp_comm_overlap
    assert st.recompute == pytest.approx(mlp + tp_f / 2)


def test_moe_modules_by_hand():
    """moe_act reruns the routed experts' activation; moe the whole MoE layer with its all-to-alls."""
    s = _scenario("deepseek-v3.yaml", SEL, "parallelism.recompute_modules=[moe_act]")
    _, ops, fw, st = _layer_times(s, moe=True)
    assert st.recompute == pytest.approx(fw["expert_activation"])
    whole = _scenario("deepseek-v3.yaml", SEL, "parallelism.recompute_modules=[moe]")
    _, ops, fw, st = _layer_times(whole, moe=True)
    layer = sum(t for o in ops for name, t in fw.items() if name == o.name and o.scope in ("moe", "moe_router", "moe_preprocess")
                and name != "post_attn_norm" and not name.startswith("mlp_"))
    assert st.recompute > layer           # plus the dispatch and combine all-to-alls
    assert {"router", "token_permute", "expert_fc1", "shared_fc2"} <= {o.name for o in ops}


def test_mla_up_proj_memory_and_flops_by_hand():
    """mla_up_proj drops the up-projected Q, K and V (2 bytes each) and keeps the latents; it reruns
    the two up projections: 2 x (q_lora_rank x q_width + kv_lora_rank x heads x (nope + v)) per token
    and layer."""
    s = _scenario("deepseek-v3.yaml")
    a = resolve(s.workload.model)
    tokens, tp = 4096, 1
    kw = dict(micro_batch=1, tp=tp, cp=1, sequence_parallel=False, recompute="selective", flash_attention=True,
              moe=True, fp8=True)
    core = activation_bytes_per_layer(a, **kw, modules=("core_attn",))
    both = activation_bytes_per_layer(a, **kw, modules=("core_attn", "mla_up_proj"))
    assert core - both == pytest.approx(tokens * 2 * (a.q_width + a.kv_width + a.v_width))
    per_layer = 2.0 * (a.q_lora_rank * a.q_width + a.kv_lora_rank * a.heads * (a.qk_nope_dim + a.v_dim))
    assert recompute_flops_per_token(a, "selective", ("mla_up_proj",)) == pytest.approx(a.num_layers * per_layer)
    # moe_act: the routed experts' fc2 input, 1 byte under FP8, top-k copies per token
    act = activation_bytes_per_layer(a, **kw, modules=("core_attn", "moe_act"))
    assert core - act == pytest.approx(tokens * a.topk * 1 * a.moe_ffn)


def test_deepseek_v3_fits_with_its_published_memory_savers_and_not_without():
    """DeepSeek-V3 recomputes every RMSNorm and the MLA up-projections (report Sec. 3.2.3) and the
    MoE SwiGLU's output (Sec. 3.3.3): with those modules its PP16 pipeline fits in 80 GB; keeping
    them (the attention core alone recomputed) it does not. The bundled workload uses them, and its
    step is shorter than with full recomputation."""
    bundled = _scenario("deepseek-v3.yaml")
    assert bundled.layout.recompute_modules == ("layernorm", "mla_up_proj", "moe_act")
    assert memory_of(bundled).total <= bundled.gpu.usable_hbm
    core = _scenario("deepseek-v3.yaml", "parallelism.recompute_modules=[core_attn]")
    assert memory_of(core).total > core.gpu.usable_hbm
    full = _scenario("deepseek-v3.yaml", "parallelism.recompute_granularity=full",
                     "parallelism.recompute_modules=null")
    assert estimate_step(bundled).step_time < 0.92 * estimate_step(full).step_time


def test_the_deepseek_and_gpt_oss_rows_run_their_recipes_modules():
    """modern.csv's recompute_modules column (the release's recipe): DeepSeek-V3 [moe_act] on GB300
    and [mla_up_proj] elsewhere in 25.11, [mla_up_proj] everywhere in 26.02.01, and in 26.04.01 on
    DGX B300 ([mla_up_proj, mlp] on DGX B200); GPT-OSS [layernorm, moe_act]. Every row that names
    modules runs selective recomputation with them."""
    from simulator.validation.runner import load_rows, scenario_of

    named = {r["run"]: r for r in load_rows() if r.get("recompute_modules", "").strip()}
    assert len(named) == 17
    for run, r in named.items():
        lay = scenario_of(r).layout
        assert lay.recompute == "selective" and lay.recompute_modules == tuple(r["recompute_modules"].split("+"))
        if run == "mb26.04.01-deepseek-v3-256xb200-fp8_mx":
            assert lay.recompute_modules == ("mla_up_proj", "mlp"), run
        elif "deepseek" in run:
            assert lay.recompute_modules == (("moe_act",) if run.startswith("mb25.11") and "gb300" in run
                                             else ("mla_up_proj",)), run
        else:
            assert "gpt-oss" in run and lay.recompute_modules == ("layernorm", "moe_act")


def test_quantize_kernels_rerun_with_their_gemms_and_moe_subsumes_its_parts():
    """Under FP8 a module's GEMMs rerun with their cast kernels; `moe` already holds the shared
    experts and the activation, so adding those modules changes neither time nor memory."""
    fp8 = "training.precision=fp8"
    moe = _scenario("deepseek-v3.yaml", fp8, "parallelism.recompute_modules=[moe]")
    more = _scenario("deepseek-v3.yaml", fp8, "parallelism.recompute_modules=[moe,shared_experts,moe_act]")
    assert estimate_step(moe).step_time == pytest.approx(estimate_step(more).step_time)
    assert memory_of(moe).total == pytest.approx(memory_of(more).total)
    s = _scenario("llama3-70b.yaml", fp8, SEL, "parallelism.recompute_modules=[mlp]")
    _, ops, fw, st = _layer_times(s, moe=False)
    casts = sum(op_time(o, s.gpu, "fp8", DEFAULT)
                for o in quantize_ops(ops, "fp8", s.layout.num_microbatches, s.gpu.fp8_any_layout)
                if o.name.split("_")[0] in ("fc1", "fc2"))
    module = sum(fw[n] for n in ("post_attn_norm", "fc1", "activation", "fc2"))
    assert casts > 0 and st.recompute > module + 0.99 * casts
