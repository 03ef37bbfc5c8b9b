"""Closed-form step: pipeline bubble formulas, collective costs, monotonicity, breakdown."""
import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator import simulate
from simulator.cost import comm, contention
from simulator.cost.stage import StageTimes
from simulator.cost.step import estimate_step, pipeline_time


def _stage(t):
    return StageTimes(t, 0, 0, 0, 0, t / 3, 2 * t / 3)


@given(p=st.integers(1, 32), m=st.integers(1, 128), t=st.floats(0.01, 10))
def test_1f1b_bubble_fraction(p, m, t):
    total, comm_t = pipeline_time([_stage(t)] * p, m, "1f1b", 1, 0.0)
    bubble = (total - m * t) / total
    assert bubble == pytest.approx((p - 1) / (m + p - 1), abs=1e-12)
    assert comm_t == 0


@given(p=st.integers(2, 16), k=st.integers(1, 8), v=st.integers(2, 6), t=st.floats(0.01, 10))
def test_interleaved_bubble_fraction(p, k, v, t):
    m = p * k
    total, _ = pipeline_time([_stage(t)] * p, m, "interleaved_1f1b", v, 0.0)
    assert (total - m * t) / total == pytest.approx((p - 1) / (v * m + p - 1), abs=1e-12)


@given(p=st.integers(2, 16), m=st.integers(1, 64))
def test_zero_bubble_closed_form(p, m):
    stage = StageTimes(3.0, 0, 0, 0, 0, 1.0, 2.0, 1.0)   # F = B = W = 1
    total, _ = pipeline_time([stage] * p, m, "zb_h1", 1, 0.0)
    assert total == pytest.approx(3 * m + (p - 1) * (1 + 1 - 1))


def test_gpipe_and_1f1b_take_the_same_time():
    stages = [_stage(1.0)] * 4
    assert pipeline_time(stages, 16, "gpipe", 1, 0.01) == pipeline_time(stages, 16, "1f1b", 1, 0.01)


def test_slowest_stage_sets_the_pace():
    total, _ = pipeline_time([_stage(1.0), _stage(2.0), _stage(1.0)], 10, "1f1b", 1, 0.0)
    assert total == pytest.approx(9 * 2.0 + 4.0)


TIERS = comm.Tiers(domain_size=8, nvlink_bw=400e9, network_bw=50e9, nvlink_hop=1e-6, network_hop=5e-6,
                   base=0.0)


def _fabric(oversubscription, job_gpus=512):
    return dataclasses.replace(TIERS, nvlink_hop=0.0, network_hop=0.0, job_gpus=job_gpus,
                               scaleout=contention.tiers_for(32, 8, 50e9, oversubscription, job_gpus))


def test_ring_all_reduce_inside_a_node_by_hand():
    S = 1e9
    expected = 2 * 7 / 8 * S / 400e9 + 2 * 7 * 1e-6
    assert comm.all_reduce(comm.Group(8, 1), S, TIERS) == pytest.approx(expected, rel=1e-12)


def test_all_gather_is_half_an_all_reduce_in_bandwidth():
    S = 8e9
    big = dataclasses.replace(TIERS, nvlink_hop=0.0)
    assert comm.all_reduce(comm.Group(8, 1), S, big) == pytest.approx(2 * comm.all_gather(comm.Group(8, 1), S, big))


def test_intra_node_collective_ignores_nic_speed():
    slow = dataclasses.replace(TIERS, network_bw=1e9)
    assert comm.all_reduce(comm.Group(8, 1), 1e9, slow) == comm.all_reduce(comm.Group(8, 1), 1e9, TIERS)


def test_oversubscription_slows_groups_by_the_ratio_their_flows_imply():
    over, flat = _fabric(4.0), _fabric(1.0)
    narrow = comm.Group(16, 8)   # 128 GPUs: stays inside a 256-GPU unit
    assert comm.all_reduce(narrow, 1e9, over) == comm.all_reduce(narrow, 1e9, flat)
    # a ring over all 512 GPUs leaves its unit on only 2 of its 64 edges: the spine is not its bottleneck
    wide = comm.Group(64, 8)
    assert comm.all_reduce(wide, 1e9, over) == pytest.approx(comm.all_reduce(wide, 1e9, flat))
    # pairs 256 ranks apart: every flow crosses the 4:1 spine, so the network phase is 4x slower
    across = comm.Group(2, 256)
    assert comm.all_gather(across, 1e9, over) == pytest.approx(4 * comm.all_gather(across, 1e9, flat))
    # all-to-all over 64 ranks, 32 per unit: half of each rank's bytes cross the 4:1 spine
    a2a = [comm.all_to_all(comm.Group(64, 8), 1e9, t) for t in (over, flat)]
    assert a2a[0] / a2a[1] == pytest.approx((0.5 * 4) / (63 / 64), rel=1e-3)


@settings(max_examples=30, deadline=None)
@given(bw1=st.floats(25, 800), bw2=st.floats(25, 800))
def test_more_nic_bandwidth_is_never_slower(scenario, bw1, bw2):
    lo, hi = sorted((bw1, bw2))
    t_lo = simulate(scenario("llama3-8b", f"cluster.node.nic_bandwidth={lo} Gb/s")).step_time_s
    t_hi = simulate(scenario("llama3-8b", f"cluster.node.nic_bandwidth={hi} Gb/s")).step_time_s
    assert t_hi <= t_lo


def test_halving_nic_bandwidth_hurts_dp_heavy_but_not_nvlink_only(scenario):
    dp_heavy = [simulate(scenario("llama3-8b", "parallelism.tensor_model_parallel_size=1",
                                  "parallelism.sequence_parallel=false", "training.global_batch_size=512",
                                  "parallelism.recompute_granularity=full",
                                  *x)).step_time_s
                for x in ([], ["cluster.node.nic_bandwidth=50 Gb/s"])]
    assert dp_heavy[1] > dp_heavy[0]
    inside = [simulate(scenario("llama3-8b", *x, gpus=8)).step_time_s
              for x in (["parallelism.tensor_model_parallel_size=8", "training.global_batch_size=8"],
                        ["parallelism.tensor_model_parallel_size=8", "training.global_batch_size=8",
                         "cluster.node.nic_bandwidth=50 Gb/s"])]
    assert inside[0] == inside[1]


@pytest.mark.parametrize("name", ["llama3-8b", "llama3-70b", "llama3-405b", "gpt3-175b", "bloom-176b",
                                  "mixtral-8x7b"])
def test_breakdown_sums_to_step_time(scenario, name):
    est = estimate_step(scenario(name))
    assert sum(est.breakdown.values()) == pytest.approx(est.step_time, rel=1e-9)
    assert all(v >= 0 for v in est.breakdown.values())


def test_same_inputs_same_numbers(scenario):
    a = simulate(scenario("mixtral-8x7b")).to_json()
    b = simulate(scenario("mixtral-8x7b")).to_json()
    assert a == b


def test_broadcast_moves_the_buffer_once():
    S = 4e9
    t = dataclasses.replace(TIERS, nvlink_hop=0.0, network_hop=0.0)
    assert comm.broadcast(comm.Group(8, 1), S, t) == pytest.approx(S / 400e9)
    assert comm.broadcast(comm.Group(16, 8), S, t) == pytest.approx(S / 50e9)     # across nodes: the NIC
    assert comm.broadcast(comm.Group(1, 1), S, t) == 0


def test_pipelined_tp_overlap_hides_each_collective_behind_its_own_gemm_by_hand():
    """Attention block: an all-gather of 2 ms beside a 1 ms qkv GEMM in 4 chunks leaves
    2 + 1/4 - 1 = 1.25 ms; a 0.5 ms reduce-scatter beside a 4 ms projection hides. MLP block: the
    same gather beside a 4 ms fc1 hides, the scatter beside 0.4 ms of fc2 leaves 0.5 + 0.1 - 0.4.
    An expert (grouped) GEMM hides nothing."""
    from simulator.cost.overlap import pipelined_tp_exposed
    from simulator.model.op import Op

    def gemm(name, scope, group=1):
        return Op(name, "gemm", 1.0, 1.0, linear=True, scope=scope, group=group)
    ops = [gemm("qkv", "attn"), Op("flash_attention", "gemm", 1.0, 1.0, attention_core=True, scope="attn"),
           gemm("attn_proj", "attn"), gemm("fc1", "mlp"), gemm("fc2", "mlp")]
    times = [1e-3, 5e-3, 4e-3, 4e-3, 0.4e-3]
    got = pipelined_tp_exposed(ops, times, 2e-3, 0.5e-3, 4)
    assert got == pytest.approx(1.25e-3 + 0.0 + 0.0 + 0.2e-3, rel=1e-12)
    moe = ops[:3] + [gemm("expert_fc1", "moe", group=8), gemm("expert_fc2", "moe", group=8)]
    assert pipelined_tp_exposed(moe, times, 2e-3, 0.5e-3, 4) == pytest.approx(1.25e-3 + 2e-3 + 0.5e-3, rel=1e-12)


@settings(max_examples=60, deadline=None)
@given(g=st.lists(st.floats(0.0, 1e-2), min_size=4, max_size=4), c=st.floats(0.0, 1e-2), r=st.floats(0.0, 1e-2),
       tp=st.integers(2, 16))
def test_pipelined_tp_overlap_never_exposes_more_than_the_collectives(g, c, r, tp):
    """Hiding can only save time: 0 <= exposed <= the four collectives, and a longer collective or a
    shorter GEMM never exposes less."""
    from simulator.cost.overlap import pipelined_tp_exposed
    from simulator.model.op import Op

    ops = [Op(n, "gemm", 1.0, 1.0, linear=True, scope=sc) for n, sc in
           (("qkv", "attn"), ("attn_proj", "attn"), ("fc1", "mlp"), ("fc2", "mlp"))]
    got = pipelined_tp_exposed(ops, g, c, r, tp)
    assert -1e-15 <= got <= 2 * (c + r) + 1e-15
    assert pipelined_tp_exposed(ops, g, c * 1.5, r, tp) >= got - 1e-15
    assert pipelined_tp_exposed(ops, [x / 2 for x in g], c, r, tp) >= got - 1e-15
