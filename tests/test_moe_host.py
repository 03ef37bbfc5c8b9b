"""MoE step physics: the host launch bound, CUDA graphs, Transformer Engine's grouped GEMM (one
GEMM per local expert on 4 streams), the EP all-to-all overlap, block-tiled attention windows."""
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator.config.gpu import catalog_gpu as gpu
from simulator.config.workload import ModelConfig
from simulator.cost import comm
from simulator.cost.compute import TILE_M, TILE_N, gemm_rate, host_launches, host_time, op_time, shape_efficiency
from simulator.cost.efficiency import DEFAULT
from simulator.cost.overlap import overlapped_ep
from simulator.cost.stage import _layer, graphed_scopes, launch_queue_time, shard_of
from simulator.cost.step import estimate_step
from simulator.model.arch import resolve
from simulator.model.ops import (DISPATCH_LAUNCHES, GROUP_STREAMS, PREPROCESS_LAUNCHES, ROUTER_LAUNCHES, Op,
                                 Shard, expert_ops, flash_keys_fraction, gemm, layer_ops, memory_op,
                                 tiled_pairs)
from simulator.validation.rows import _cuda_graphs


def _moe_model(**moe) -> ModelConfig:
    return ModelConfig.model_validate(dict(
        num_layers=4, hidden_size=2048, num_attention_heads=16, vocab_size=1000, seq_length=4096,
        activation="swiglu", add_bias_linear=False,   # Qwen3-like: no biases (expert biases: test_gptoss_physics)
        moe={"num_experts": 128, "moe_router_topk": 8, "moe_ffn_hidden_size": 768, **moe}))


# ---- host launches, by hand -------------------------------------------------------------------

def test_host_time_counts_launches_by_hand():
    eff = DEFAULT.with_(host_launch=10e-6)
    lin = gemm("fc", 256, 1024, 1024, 2.0, linear=True)            # 1 launch fwd, dgrad + wgrad bwd
    norm = memory_op("norm", 1e6, 2.0)                              # 1 launch each way
    grouped = Op("experts", "gemm", 1.0, 1.0, linear=True, shape=(64, 1024, 1024), group=16, launches=16)
    ops = [lin, norm, grouped]
    # bf16: 1 + 1 + 16 forward; 2 + 1 + 32 backward
    assert host_time(ops, "bf16", eff) == pytest.approx(18 * 10e-6)
    assert host_time(ops, "bf16", eff, backward=True) == pytest.approx(35 * 10e-6)
    # FP8: every linear GEMM quantises its operand first, one more launch per GEMM
    assert host_launches(grouped, "fp8_mx") == 32 and host_launches(norm, "fp8_mx") == 1
    assert host_time(ops, "fp8_mx", eff) == pytest.approx((2 + 1 + 32) * 10e-6)


def test_cuda_graph_scopes_replay_as_one_launch():
    eff = DEFAULT.with_(host_launch=10e-6)
    ops = [memory_op("a", 1.0, 2.0, scope="attn"), memory_op("b", 1.0, 2.0, scope="attn"),
           memory_op("r", 1.0, 2.0, scope="moe_router", launches=12), memory_op("x", 1.0, 2.0, scope="moe")]
    assert host_time(ops, "bf16", eff) == pytest.approx(15 * 10e-6)
    # attn (2 launches) and moe_router (12) each become one graph launch; the moe op stays eager
    assert host_time(ops, "bf16", eff, graphed=frozenset({"attn", "moe_router"})) == pytest.approx(3 * 10e-6)
    assert host_time(ops, "bf16", eff, graphed=frozenset({"full"})) == pytest.approx(10e-6)


def test_moe_layer_launches_by_hand():
    """Forward launches of one MoE layer (bf16, EP 8 -> 16 local experts, no qk-norm): input norm,
    qkv, attention, projection, residual (5); pre-MLP norm (1), router, preprocess, dispatch +
    combine, fc1 x 16, activation, fc2 x 16, residual."""
    a = resolve(_moe_model())
    ops = layer_ops(a, Shard(1, 1, 1, 8, False, True), moe=True)
    want = 5 + 1 + ROUTER_LAUNCHES + PREPROCESS_LAUNCHES + DISPATCH_LAUNCHES + 16 + 1 + 16 + 1
    assert sum(host_launches(o, "bf16") for o in ops) == want
    # backward: GEMMs twice (qkv, projection, the router, each expert; flash attention's backward
    # is two kernels too), no backward for the dispatcher's metadata
    want_b = (1 + 2 + 2 + 2 + 1) + 1 + 2 * ROUTER_LAUNCHES + DISPATCH_LAUNCHES + 2 * 16 + 1 + 2 * 16 + 1
    assert sum(host_launches(o, "bf16", backward=True) for o in ops) == want_b


def _qwen(scenario, *extra):
    return scenario("qwen3-30b-a3b", "parallelism.recompute_granularity=none", *extra)


def test_host_bound_layer_takes_its_launch_time(scenario):
    """With a host far slower than the kernels, a layer's forward is its launches x host time plus the
    last kernel launched before the next sync (the dispatcher's metadata), which runs after it."""
    s = _qwen(scenario)
    a, sh = resolve(s.workload.model), shard_of(s)
    tiers = comm.tiers_of(s.cluster, s.gpu, DEFAULT, s.num_gpus)
    slow = DEFAULT.with_(host_launch=1e-2)
    lt = _layer(a, s, sh, slow, tiers, moe=True)
    ops = layer_ops(a, sh, moe=True)
    last = next(o for o in ops if o.name == "dispatch_preprocess")
    assert lt.fwd == pytest.approx(host_time(ops, "bf16", slow) + op_time(last, s.gpu, "bf16", slow))
    assert lt.bwd == pytest.approx(host_time(ops, "bf16", slow, backward=True))
    assert lt.host_fwd > 0 and lt.host_bwd > 0
    # a host with no cost: the device time, and no host-bound part
    free = _layer(a, s, sh, DEFAULT.with_(host_launch=0.0), tiers, moe=True)
    assert free.host == 0.0 and free.fwd < lt.fwd


def test_host_bound_shows_in_the_breakdown_and_sums(scenario):
    s = _qwen(scenario)
    est = estimate_step(s, DEFAULT.with_(host_launch=1e-3))
    assert est.breakdown["host_bound"] > 0
    assert sum(est.breakdown.values()) == pytest.approx(est.step_time)
    assert "host_bound" not in estimate_step(s, DEFAULT.with_(host_launch=0.0)).breakdown


def test_cuda_graphs_reduce_a_host_bound_step(scenario):
    eff = DEFAULT.with_(host_launch=2e-4)   # a host slow enough that the eager layers are host-bound
    eager = estimate_step(_qwen(scenario), eff).step_time
    scoped = estimate_step(_qwen(scenario, "training.cuda_graph_impl=transformer_engine",
                                 "training.cuda_graph_scope=[attn,moe_router,moe_preprocess]"), eff).step_time
    full = estimate_step(_qwen(scenario, "training.cuda_graph_impl=full_iteration"), eff).step_time
    assert full < scoped < eager
    # graphs only remove host time: with a free host they change nothing
    free = DEFAULT.with_(host_launch=0.0)
    assert estimate_step(_qwen(scenario, "training.cuda_graph_impl=full_iteration"), free).step_time == \
        pytest.approx(estimate_step(_qwen(scenario), free).step_time)


def test_graphed_scopes_follow_the_workload(scenario):
    assert graphed_scopes(_qwen(scenario)) == frozenset()
    assert graphed_scopes(_qwen(scenario, "training.cuda_graph_impl=local")) >= {"attn", "moe", "mlp"}
    assert graphed_scopes(_qwen(scenario, "training.cuda_graph_impl=transformer_engine",
                                "training.cuda_graph_scope=[moe_router]")) == {"moe_router"}


def test_validation_rows_name_their_cuda_graphs():
    assert _cuda_graphs("") == {} and _cuda_graphs("none") == {}
    assert _cuda_graphs("transformer_engine:attn+moe_router") == {
        "cuda_graph_impl": "transformer_engine", "cuda_graph_scope": ["attn", "moe_router"]}
    assert _cuda_graphs("full_iteration") == {"cuda_graph_impl": "full_iteration"}


# ---- grouped GEMM at small M -------------------------------------------------------------------

def test_grouped_gemm_at_small_m_by_hand():
    """Qwen3-30B-like experts on a B200 (148 SMs): 256 tokens per expert, fc1 2048 -> 1536.
    One expert's GEMM has 2 x 12 = 24 tiles; 4 streams put 96 in flight on 148 SMs: one wave,
    96/148 full; rows fill their tiles; depth 2048 / (2048 + 64)."""
    eff = shape_efficiency(256, 2048, 1536, 148, concurrent=GROUP_STREAMS)
    assert eff == pytest.approx((96 / 148) * 2048 / (2048 + 64))
    # 100 tokens per expert: rows padded to 128
    assert shape_efficiency(100, 2048, 1536, 148, 4) == pytest.approx((100 / 128) * (48 / 148) * 2048 / 2112)
    # 4096 tokens on one GPU holding all 128 experts (EP 1): 4096 x 8 / 128 = 256 rows each
    a = resolve(_moe_model())
    fc1 = expert_ops(a, Shard(1, 1, 1, 1, False, True), 4096)[0]
    assert fc1.shape == (256, 2048, 1536) and fc1.group == 128
    g = gpu("b200")
    t = op_time(fc1, g, "bf16", DEFAULT)
    compute = fc1.flops / gemm_rate(g, "bf16", DEFAULT) / eff
    assert t == pytest.approx(max(compute, fc1.bytes / (g.hbm_bandwidth * DEFAULT.memory))
                              + 128 / 4 * DEFAULT.kernel_overhead)


@given(m=st.floats(1, 8192), k=st.sampled_from([768, 1536, 2048, 2880, 4096]),
       n=st.sampled_from([768, 1536, 2880, 4096, 5760]), group=st.integers(1, 64),
       sms=st.sampled_from([108, 132, 148]))
@settings(max_examples=200, deadline=None)
def test_twice_the_tokens_per_expert_never_lowers_efficiency(m, k, n, group, sms):
    """Tile padding, waves and the fixed per-kernel costs all amortise better with more rows:
    doubling the tokens per expert never lowers the grouped GEMM's useful FLOP rate (a small
    increase can: the next wave starts partly empty), and more tokens never take less time."""
    assert shape_efficiency(2 * m, k, n, sms, min(group, 4)) >= shape_efficiency(m, k, n, sms, min(group, 4)) - 1e-12
    g = gpu("b200")

    def op(rows):
        return Op("e", "gemm", group * 2.0 * rows * k * n, group * 2.0 * (rows * k + k * n + rows * n),
                  linear=True, shape=(rows, k, n), group=group, launches=group)
    for backward in (False, True):
        t1, t2 = op_time(op(m), g, "bf16", DEFAULT, backward), op_time(op(2 * m), g, "bf16", DEFAULT, backward)
        assert t2 >= t1 * (1 - 1e-12)
        assert op(2 * m).flops / t2 >= op(m).flops / t1 * (1 - 1e-9)


# ---- EP all-to-all overlap ---------------------------------------------------------------------

def test_overlapped_all_to_all_by_hand():
    # 3 ms of dispatch/combine behind 2 ms of compute: 1 ms shows, split as the two directions were,
    # and the 2 ms of compute it overlaps run on 132 - 20 SMs: 2 ms x 20 / 112 longer
    f, b = overlapped_ep(1.5e-3, 1.5e-3, 2e-3)
    assert (f, b) == (pytest.approx(0.5e-3 + 1e-3 * 20 / 112), pytest.approx(0.5e-3 + 1e-3 * 20 / 112))
    # wholly hidden: only the SMs it took show (2 ms overlapped; a 148-SM Blackwell: 20 / 128)
    assert overlapped_ep(1e-3, 1e-3, 5e-3) == (pytest.approx(1e-3 * 20 / 112),) * 2
    assert overlapped_ep(1e-3, 1e-3, 5e-3, sms=148) == (pytest.approx(1e-3 * 20 / 128),) * 2
    assert overlapped_ep(0.0, 0.0, 5e-3) == (0.0, 0.0)


def test_a2a_overlap_never_slows_the_step(scenario):
    base = _qwen(scenario)
    over = _qwen(scenario, "parallelism.overlap_moe_expert_parallel_comm=true")
    a, b = estimate_step(base), estimate_step(over)
    # behind a slow host the hidden all-to-all turns into waiting for launches: never slower
    assert b.breakdown["ep_comm"] < a.breakdown["ep_comm"] and b.step_time <= a.step_time
    free = DEFAULT.with_(host_launch=0.0)
    assert estimate_step(over, free).step_time < estimate_step(base, free).step_time


# ---- attention windows on whole blocks ---------------------------------------------------------

def test_tiled_pairs_by_hand():
    # 512 tokens, 128-blocks: 4 query blocks; full causal runs 1 + 2 + 3 + 4 key blocks
    assert tiled_pairs(512, 512) == 10 * 128 * 128
    # a 128-key window: the first block 1, each later block its diagonal and the one before
    assert tiled_pairs(512, 128) == (1 + 2 + 2 + 2) * 128 * 128
    assert tiled_pairs(512, 1) == (1 + 2 + 2 + 2) * 128 * 128   # a 1-key window still touches 2 blocks


def test_gpt_oss_window_costs_whole_blocks():
    a = resolve(ModelConfig.model_validate(dict(
        num_layers=4, hidden_size=1024, num_attention_heads=16, vocab_size=1000, seq_length=4096,
        sliding_window=128, window_attn_skip_freq=2)))
    n = 4096 // 128
    full = n * (n + 1) / 2 / (n * n / 2)
    window = (1 + 2 * (n - 1)) / (n * n / 2)
    assert flash_keys_fraction(a) == pytest.approx((full + window) / 2)
    # about twice the exact window's pairs (w s - w^2/2), the price of whole 128 x 128 blocks
    assert window / ((128 * 4096 - 128 * 128 / 2) / (4096 * 4096 / 2)) == pytest.approx(2.0, rel=0.02)
    assert TILE_M == TILE_N == 128


def test_des_reports_the_same_host_bound_time(scenario):
    from simulator.engine.iteration import simulate_step

    s = _qwen(scenario)   # bundled Qwen3-30B-A3B, eager: host-bound at 50 us per launch
    des, cf = simulate_step(s), estimate_step(s)
    assert cf.breakdown["host_bound"] > 0
    assert des.breakdown["host_bound"] == pytest.approx(cf.breakdown["host_bound"], rel=0.02)
    assert sum(des.breakdown.values()) == pytest.approx(des.step_time, rel=1e-9)


# ---- kernels launched in order after a host sync ---------------------------------------------

def test_launch_queue_time_by_hand():
    """Kernel j starts once launched and once j-1 is done: host 1+1 (two cheap launches of long
    kernels), then a 5-launch kernel of 1: the GPU runs 3 + 3, then waits for the third launch at 7."""
    assert launch_queue_time([1.0, 1.0, 5.0], [3.0, 3.0, 1.0]) == pytest.approx(8.0)
    # host-heavy first, device-heavy last: the host time of the first plus the device time of the last
    assert launch_queue_time([5.0, 1.0], [1.0, 5.0]) == pytest.approx(11.0)
    # the reverse order overlaps: max(host, device) + the first launch
    assert launch_queue_time([1.0, 5.0], [5.0, 1.0]) == pytest.approx(7.0)
    assert launch_queue_time([], []) == 0.0


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 1), st.floats(0, 1)), min_size=1, max_size=12))
def test_launch_queue_time_bounds(pairs):
    """Never below the host's or the GPU's total, never above their sum."""
    h, d = [p[0] for p in pairs], [p[1] for p in pairs]
    t = launch_queue_time(h, d)
    assert max(sum(h), sum(d)) - 1e-12 <= t <= sum(h) + sum(d) + 1e-12


def test_moe_forward_pays_the_sync_between_host_and_device_heavy_ops(scenario):
    """An MoE layer's forward is launched from the dispatcher's sync on: at a host launch time where
    the layer's totals balance, the in-order time exceeds max(host, device)."""
    s = _qwen(scenario)
    a, sh = resolve(s.workload.model), shard_of(s)
    tiers = comm.tiers_of(s.cluster, s.gpu, DEFAULT, s.num_gpus)
    ops = layer_ops(a, sh, moe=True)
    device = _layer(a, s, sh, DEFAULT.with_(host_launch=0.0), tiers, moe=True).fwd
    eff = DEFAULT.with_(host_launch=device / host_time(ops, "bf16", DEFAULT.with_(host_launch=1.0)))
    lt = _layer(a, s, sh, eff, tiers, moe=True)
    assert host_time(ops, "bf16", eff) == pytest.approx(device)
    assert lt.host_fwd > 0.0 and lt.fwd > device * 1.0001


def test_flex_dispatcher_fuses_permute_and_sort(scenario):
    """moe_token_dispatcher_type flex (DeepEP / HybridEP): the dispatch kernel permutes and sorts by
    local expert, so the dispatcher launches fewer kernels and moves no separate chunk sort."""
    s = _qwen(scenario)
    a, sh = resolve(s.workload.model), shard_of(s)
    flex = resolve(ModelConfig.model_validate({**s.workload.model.model_dump(exclude_unset=True),
                                              "moe": {**s.workload.model.moe.model_dump(exclude_unset=True),
                                                      "moe_token_dispatcher_type": "flex"}}))
    by = lambda arch: {o.name: o for o in layer_ops(arch, sh, moe=True)}
    alltoall, fused = by(a), by(flex)
    assert fused["dispatch_preprocess"].launches < alltoall["dispatch_preprocess"].launches
    assert fused["token_permute"].launches < alltoall["token_permute"].launches
    T, k, h = sh.tokens(a), a.topk, a.hidden
    assert fused["token_permute"].bytes == pytest.approx(2 * (1 + k) * T * h * sh.act_bytes)
    assert alltoall["token_permute"].bytes == pytest.approx((2 * (1 + k) + 4 * k) * T * h * sh.act_bytes)
