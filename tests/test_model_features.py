"""Modern model features: MLA, MoE layer patterns, grouped GEMM, load imbalance, sliding windows,
attention sinks, qk-layernorm, multi-token prediction, low precisions; the bundled modern workloads."""
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator.cli import main
from simulator.config.workload import ModelConfig
from simulator.cost.compute import ops_time
from simulator.cost.efficiency import DEFAULT
from simulator.config.gpu import catalog_gpu as gpu
from simulator.model.arch import resolve
from simulator.model.flops import attention_fwd_flops_per_token, model_flops_per_token
from simulator.model.memory import activation_bytes_per_layer
from simulator.cost.compute import TILE_M, gemm_rate
from simulator.model.ops import GROUP_STREAMS, Shard, expert_ops, layer_ops, output_ops
from simulator.model.params import count, mtp_params
from tests.conftest import WORKLOADS
from tests.test_cli_errors import check, run_cli, workload_file, _s


# ---- published parameter counts ---------------------------------------------------------------

@pytest.mark.parametrize("name,published", [
    ("deepseek-v3", 671e9),        # DeepSeek-V3 report, Sec. 1: 671B total (main model)
    ("qwen3-30b-a3b", 30.5e9),     # Qwen3 report, Table 2 / model card: 30.5B
    ("qwen3-235b-a22b", 235e9),    # Qwen3 report: 235B
    ("gpt-oss-120b", 116.83e9),    # gpt-oss model card, Table 1: 116.83B
])
def test_published_parameter_counts(scenario, name, published):
    assert count(resolve(scenario(name).workload.model)).total == pytest.approx(published, rel=0.01)


def test_deepseek_v3_with_mtp_is_the_685b_checkpoint(scenario):
    # the released checkpoint (685B) = 671B main model + the MTP module, which stores its own copy of
    # the embedding and output head (Hugging Face model card of deepseek-ai/DeepSeek-V3)
    a = resolve(scenario("deepseek-v3").workload.model)
    pc = count(a)
    assert pc.total + pc.mtp + 2 * a.vocab * a.hidden == pytest.approx(685e9, rel=0.01)


def test_active_parameters_without_the_input_embedding(scenario):
    # gpt-oss model card: 5.13B active; DeepSeek-V3: 37B (rounded to the billion) -- both leave the
    # embedding lookup out of the active count
    a = resolve(scenario("gpt-oss-120b").workload.model)
    assert count(a).active - a.vocab * a.hidden == pytest.approx(5.13e9, rel=0.01)
    a = resolve(scenario("deepseek-v3").workload.model)
    assert count(a).active - a.vocab * a.hidden == pytest.approx(37e9, rel=0.015)


def _mla(**kw) -> ModelConfig:
    base = dict(num_layers=4, hidden_size=2048, num_attention_heads=16, vocab_size=1000, seq_length=4096,
                activation="swiglu", normalization="rmsnorm", position_embedding_type="rope",
                untie_embeddings_and_output_weights=True, add_bias_linear=False,
                multi_latent_attention=dict(q_lora_rank=None, kv_lora_rank=512, qk_nope_head_dim=128,
                                            qk_rope_head_dim=64, v_head_dim=128))
    base.update(kw)
    return ModelConfig.model_validate(base)


def test_mla_parameters_by_hand():
    # DeepSeek-V2-Lite-like attention: q_proj h x H(dn+dr), kv_a h x (kr+dr), kv_a norm kr,
    # kv_b kr x H(dn+dv), o_proj H dv x h
    a = resolve(_mla())
    h, H = 2048, 16
    attn = h * H * 192 + h * (512 + 64) + 512 + 512 * H * (128 + 128) + H * 128 * h
    layer = attn + 3 * h * 8192 + 2 * h
    assert count(a).per_dense_layer == layer
    # with a query low-rank pair: h x qr, qr norm, qr x H(dn+dr) instead of h x H(dn+dr)
    b = resolve(_mla(multi_latent_attention=dict(q_lora_rank=256, kv_lora_rank=512, qk_nope_head_dim=128,
                                                 qk_rope_head_dim=64, v_head_dim=128)))
    assert count(b).per_dense_layer - layer == h * 256 + 256 + 256 * H * 192 - h * H * 192


def test_mla_attention_flops_use_both_head_dims():
    a = resolve(_mla())
    # QK^T over dn + dr = 192, AV over dv = 128: 2 x s x H x (192 + 128) per layer
    assert attention_fwd_flops_per_token(a) == 2.0 * 4096 * 16 * (192 + 128) * 4


def test_mla_down_projections_are_not_split_over_tp():
    a = resolve(_mla())
    f = {t: {o.name: o.flops for o in layer_ops(a, Shard(1, t, 1, 1, False, True))} for t in (1, 2)}
    assert f[2]["kv_down"] == f[1]["kv_down"]            # replicated on each TP rank
    assert f[2]["kv_up"] == pytest.approx(f[1]["kv_up"] / 2)
    assert f[2]["q_proj"] == pytest.approx(f[1]["q_proj"] / 2)
    # under sequence parallelism each rank runs the down projection on its sequence shard
    sp = {o.name: o.flops for o in layer_ops(a, Shard(1, 2, 1, 1, True, True))}
    assert sp["kv_down"] == pytest.approx(f[1]["kv_down"] / 2)


def test_mla_latents_kept_whole_under_sequence_parallelism():
    a = resolve(_mla())
    def acts(tp):
        return activation_bytes_per_layer(a, 1, tp, 1, True, "none", True)
    latent = 4096 * (4 * 512 + 2 * 64)   # norm inputs + up-projection inputs (bf16) and rotary key
    # everything else halves from TP1 to TP2 with SP; the latents do not
    assert acts(1) - latent == pytest.approx(2 * (acts(2) - latent))


# ---- MoE layer patterns, grouped GEMM, load imbalance ----------------------------------------

def _moe(**moe) -> ModelConfig:
    return ModelConfig.model_validate(dict(
        num_layers=8, hidden_size=1024, num_attention_heads=8, vocab_size=1000, seq_length=2048,
        activation="swiglu", normalization="rmsnorm", add_bias_linear=False, ffn_hidden_size=4096,
        moe={"num_experts": 64, "moe_router_topk": 8, "moe_ffn_hidden_size": 256, **moe}))


def test_first_k_dense_equals_a_written_out_pattern():
    a = resolve(_moe(first_k_dense_replace=3))
    b = resolve(_moe(moe_layer_freq=[0, 0, 0, 1, 1, 1, 1, 1]))
    assert a.num_moe_layers == b.num_moe_layers == 5
    assert count(a) == count(b)
    assert model_flops_per_token(a) == model_flops_per_token(b)
    # a period of 2 after 3 dense layers: layers 4 and 6
    assert resolve(_moe(moe_layer_freq=2, first_k_dense_replace=3)).num_moe_layers == 2


def test_grouped_gemm_overlaps_the_per_expert_launches():
    a, seq = resolve(_moe()), resolve(_moe(moe_grouped_gemm=False))
    sh = Shard(1, 1, 1, 1, False, True)
    g = gpu("h100-sxm")
    grouped, sequential = ops_time(expert_ops(a, sh, 2048), g, "bf16", DEFAULT), ops_time(expert_ops(seq, sh, 2048), g, "bf16", DEFAULT)
    assert grouped < sequential
    # fc1 and fc2: 64 GEMMs each either way (Transformer Engine's grouped GEMM is one cuBLAS GEMM per
    # expert), but GROUP_STREAMS of them run at once, so their fixed costs overlap 4-fold
    assert sequential - grouped >= (64 - 64 / GROUP_STREAMS) * 2 * DEFAULT.kernel_overhead * (1 - 1e-9)


@given(tokens=st.integers(1, 4096))
@settings(max_examples=50, deadline=None)
def test_grouped_gemm_pads_each_expert_to_the_tile(tokens):
    """Useful FLOPs are counted; each expert's GEMM rows are padded to the 128-row tile in its time."""
    a = resolve(_moe())
    sh = Shard(1, 1, 1, 1, False, True)
    g = gpu("h100-sxm")
    fc1 = expert_ops(a, sh, tokens)[0]
    m = tokens * 8 / 64
    assert fc1.flops == pytest.approx(64 * 2 * m * 1024 * 512)
    assert fc1.shape == (m, 1024, 512) and fc1.group == 64 and fc1.launches == 64
    padded = -(-m // TILE_M) * TILE_M
    busy = ops_time([fc1], g, "bf16", DEFAULT) - 64 / GROUP_STREAMS * DEFAULT.kernel_overhead
    assert busy >= 64 * 2 * padded * 1024 * 512 / gemm_rate(g, "bf16", DEFAULT) * (1 - 1e-9)


def test_load_imbalance_slows_the_busiest_rank_only_with_ep():
    sh1, sh8 = Shard(1, 1, 1, 1, False, True), Shard(1, 1, 1, 8, False, True)
    base, skew = resolve(_moe()), resolve(_moe(moe_expert_load_imbalance=1.5))
    forced = resolve(_moe(moe_router_force_load_balancing=True))
    assert expert_ops(skew, sh1, 2048)[0].flops == expert_ops(base, sh1, 2048)[0].flops
    assert expert_ops(skew, sh8, 2048)[0].flops == pytest.approx(1.5 * expert_ops(base, sh8, 2048)[0].flops)
    assert expert_ops(forced, sh8, 2048)[0].flops == expert_ops(base, sh8, 2048)[0].flops


# ---- sliding windows, sinks, qk-layernorm -----------------------------------------------------

def _swa(**kw) -> ModelConfig:
    base = dict(num_layers=4, hidden_size=1024, num_attention_heads=16, vocab_size=1000, seq_length=4096)
    base.update(kw)
    return ModelConfig.model_validate(base)


def test_gpt_oss_alternates_window_and_full(scenario):
    a = resolve(scenario("gpt-oss-120b").workload.model)
    assert a.windows[:4] == (128, 0, 128, 0) and len(a.windows) == 36
    # MFU convention: full layers s x s, windowed s x w
    assert a.mean_keys_fraction == pytest.approx((1 + 128 / 4096) / 2)
    # executed causal pairs: full s^2/2, windowed w s - w^2/2
    s, w = 4096, 128
    assert a.mean_causal_keys_fraction == pytest.approx((1 + (w * s - w * w / 2) / (s * s / 2)) / 2)


def test_window_flops_by_hand():
    full, win = resolve(_swa()), resolve(_swa(sliding_window=1024))
    assert attention_fwd_flops_per_token(win) == pytest.approx(attention_fwd_flops_per_token(full) * 1024 / 4096)
    assert resolve(_swa(sliding_window=4096)).mean_causal_keys_fraction == 1.0
    # window_attn_skip_freq 2 and the equivalent layer_types give the same model
    a = resolve(_swa(sliding_window=512, window_attn_skip_freq=2))
    b = resolve(_swa(sliding_window=512, layer_types=["sliding_attention", "full_attention"] * 2))
    assert a.windows == b.windows == (512, 0, 512, 0)


@given(w=st.integers(1, 4096))
@settings(max_examples=50, deadline=None)
def test_window_flops_grow_with_the_window(w):
    sh = Shard(1, 1, 1, 1, False, True)
    a, b = resolve(_swa(sliding_window=w)), resolve(_swa(sliding_window=min(w + 64, 4096)))
    fa = [o for o in layer_ops(a, sh) if o.name == "flash_attention"][0].flops
    fb = [o for o in layer_ops(b, sh) if o.name == "flash_attention"][0].flops
    full = [o for o in layer_ops(resolve(_swa()), sh) if o.name == "flash_attention"][0].flops
    assert 0 < fa <= fb <= full * (1 + 1e-12)


def test_sinks_and_qk_norm_parameters():
    base = count(resolve(_swa())).per_dense_layer
    assert count(resolve(_swa(softmax_type="learnable"))).per_dense_layer - base == 16        # one per head
    assert count(resolve(_swa(qk_layernorm=True))).per_dense_layer - base == 2 * 64           # q and k norms


# ---- multi-token prediction -------------------------------------------------------------------

def test_mtp_adds_flops_params_and_last_stage_work(scenario):
    s = scenario("deepseek-v3")
    a = resolve(s.workload.model)
    no = resolve(s.workload.model.model_copy(update={"mtp_num_layers": 0}))
    assert model_flops_per_token(a) > model_flops_per_token(no)
    shared, experts = mtp_params(a)
    assert experts == count(a).per_moe_layer_experts        # the MTP layer is an MoE layer
    sh = Shard(1, 1, 1, 64, False, True)
    assert sum(o.flops * o.count for o in output_ops(a, sh)) > 2 * sum(o.flops * o.count for o in output_ops(no, sh))


def test_mtp_memory_on_the_last_stage(scenario):
    with_mtp = scenario("deepseek-v3")
    without = scenario("deepseek-v3", "model.mtp_num_layers=0")
    from simulator.simulate import stage_memory
    m1, m0 = stage_memory(with_mtp), stage_memory(without)
    assert m1[-1].total > m0[-1].total
    assert [m.total for m in m1[:-1]] == [m.total for m in m0[:-1]]


# ---- precisions --------------------------------------------------------------------------------

def _step(capsys, *args):
    assert main(["run", str(WORKLOADS / "llama3-8b.yaml"), "--fast", "--replicas", "2", "--json", *args]) == 0
    return json.loads(capsys.readouterr().out)["step_time_s"]


def test_low_precisions_speed_up_on_blackwell(capsys):
    b = ["--cluster", "topologies/dgx-b200.yaml"]
    bf16, mx, fp4 = (_step(capsys, *b, "--set", f"training.precision={p}") for p in ("bf16", "fp8_mx", "nvfp4"))
    assert fp4 < mx < bf16
    # same FP8 GEMMs; current scaling pays one more read of each quantized tensor (its amax pass)
    cs, ds = _step(capsys, "--set", "training.precision=fp8_cs"), _step(capsys, "--set", "training.precision=fp8")
    assert ds < cs < 1.05 * ds


def test_unsupported_precision_names_the_gpu_and_its_precisions(tmp_path, capsys):
    wl = workload_file(tmp_path, "llama3-8b.yaml")
    code, err = run_cli(capsys, ["run", wl, "--set", "training.precision=nvfp4"])
    check(code, err, 2, "training.precision", "H100 SXM5 80GB", "NVFP4", "bf16, fp16, fp8, fp8_cs")


# ---- bad input ---------------------------------------------------------------------------------

MLA_PARTIAL = {"kv_lora_rank": 512}


@pytest.mark.parametrize("sets,needles", [
    ([("model.multi_latent_attention", MLA_PARTIAL)], ["model.multi_latent_attention.qk_nope_head_dim"]),
    ([("model.sliding_window", 9000)], ["model.sliding_window", "seq_length=8192"]),
    ([("model.window_attn_skip_freq", 2)], ["model.window_attn_skip_freq", "model.sliding_window"]),
    ([("model.sliding_window", 128), ("model.layer_types", ["full_attention"] * 3)],
     ["model.layer_types", "num_layers=32"]),
    ([("model.moe", {"num_experts": 8, "moe_layer_freq": [1, 0]})], ["model.moe.moe_layer_freq", "32"]),
    ([("model.moe", {"num_experts": 8, "first_k_dense_replace": 32})], ["model.moe.first_k_dense_replace"]),
    ([("model.moe", {"num_experts": 8, "moe_router_num_groups": 4})], ["model.moe.moe_router_group_topk"]),
    ([("model.moe", {"num_experts": 8, "moe_router_num_groups": 3, "moe_router_group_topk": 1})],
     ["model.moe.moe_router_num_groups", "num_experts=8"]),
    ([("model.moe", {"num_experts": 8, "moe_expert_load_imbalance": 0.5})],
     ["model.moe.moe_expert_load_imbalance", ">= 1.0"]),
    ([("model.multi_latent_attention", {"kv_lora_rank": 512, "qk_nope_head_dim": 128, "qk_rope_head_dim": 64,
                                        "v_head_dim": 128})], ["model.num_query_groups"]),
    ([("model.position_embedding_type", "learned_absolute"), ("model.yarn_rotary_scaling_factor", 32.0)],
     ["model.yarn_rotary_scaling_factor", "position_embedding_type: rope"]),
    ([("model.yarn_mscale", 1.0)], ["model.yarn_mscale", "model.yarn_rotary_scaling_factor"]),
])
def test_bad_model_features_exit_2(tmp_path, capsys, sets, needles):
    edits = [_s(k, v) for k, v in sets]
    wl = workload_file(tmp_path, "llama3-8b.yaml", lambda d: [e(d) for e in edits])
    code, err = run_cli(capsys, ["run", wl, "--fast"])
    check(code, err, 2, *needles)


# ---- the modern workloads end to end ----------------------------------------------------------

@pytest.mark.parametrize("name", ["deepseek-v3", "qwen3-30b-a3b", "gpt-oss-120b"])
def test_search_and_levers_smoke(capsys, name):
    w = str(WORKLOADS / f"{name}.yaml")
    if name != "deepseek-v3":   # 61 layers: search's stage splits need PP | layers (+ 2); 2048 has no such PP
        assert main(["search", w, "--top", "1", "--fast", "--replicas", "2", "--workers", "1", "--no-progress",
                     "--tp", "1", "--cp", "1", "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["best"]
    assert main(["levers", w, "--fast", "--replicas", "2", "--only", "fp8", "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)["levers"]) == 2


def test_pruning_keeps_mla_and_layer_patterns_valid(scenario):
    from simulator.config.model_checks import check_model_features
    from simulator.model.resize import pruned_model

    m = scenario("deepseek-v3").workload.model
    p = pruned_model(m.model_copy(update={"moe": m.moe.model_copy(update={"moe_layer_freq": [0] * 3 + [1] * 58,
                                                                         "first_k_dense_replace": 0})}), 0.75, 0.5)
    check_model_features(p, lambda loc: "pruned")
    assert p.multi_latent_attention == m.multi_latent_attention and p.num_query_groups is None
    assert len(p.moe.moe_layer_freq) == p.num_layers == 30 and p.moe.moe_layer_freq[:4] == [0, 0, 0, 1]
    g = scenario("gpt-oss-120b").workload.model
    g = g.model_copy(update={"window_attn_skip_freq": None,
                             "layer_types": ["sliding_attention", "full_attention"] * 18})
    q = pruned_model(g, 1.0, 0.5)
    check_model_features(q, lambda loc: "pruned")
    assert q.layer_types == ["sliding_attention", "full_attention"] * 9


# ---- DeepEP-style dispatch ---------------------------------------------------------------------

def test_dispatch_dedup_by_hand():
    from simulator.model.routing import dispatch_volume_factor, remote_copies
    a = resolve(_moe(moe_token_dispatcher_type="flex"))      # 64 experts, top-8
    assert remote_copies(a, 1, True) == 0.0 and dispatch_volume_factor(a, 1) == 1.0
    # 2 domains of 32 experts: the other domain is hit unless all 8 picks are local
    from math import comb
    hit = 1 - comb(32, 8) / comb(64, 8)
    assert remote_copies(a, 2, True) == pytest.approx(hit)
    assert remote_copies(a, 2, False) == 8 * 1 / 2
    top1 = resolve(_moe(moe_router_topk=1, moe_token_dispatcher_type="flex"))
    assert dispatch_volume_factor(top1, 8) == pytest.approx(1.0)    # one copy either way
    capped = resolve(_moe(moe_token_dispatcher_type="flex", moe_router_num_groups=8, moe_router_group_topk=2))
    assert remote_copies(capped, 8, True) <= 2 and dispatch_volume_factor(capped, 8) < dispatch_volume_factor(a, 8)


@given(domains=st.sampled_from([2, 4, 8, 16, 32]), topk=st.integers(1, 8))
@settings(max_examples=40, deadline=None)
def test_dispatch_factor_is_a_fraction(domains, topk):
    from simulator.model.routing import dispatch_volume_factor
    a = resolve(_moe(moe_router_topk=topk, moe_token_dispatcher_type="flex"))
    assert 0 < dispatch_volume_factor(a, domains) <= 1 + 1e-12
    assert dispatch_volume_factor(resolve(_moe(moe_router_topk=topk)), domains) == 1.0


def test_deepep_shortens_cross_node_expert_parallelism(scenario):
    from simulator.simulate import simulate
    flex, nccl = (simulate(scenario("deepseek-v3", f"model.moe.moe_token_dispatcher_type={d}"), engine="analytical")
                  for d in ("flex", "alltoall"))
    assert flex.breakdown["ep_comm"] < nccl.breakdown["ep_comm"]
