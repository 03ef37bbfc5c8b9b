"""Megatron rank order: groups tile the ranks, and resolve to the links they use."""
from hypothesis import given
from hypothesis import strategies as st

from simulator.topology.placement import coordinates, group_shape, links, members

SPANS = [("leaf", 256), ("spine", 8192)]


@given(tp=st.sampled_from([1, 2, 4, 8]), cp=st.sampled_from([1, 2]), dp=st.integers(1, 8), pp=st.integers(1, 4))
def test_groups_of_a_kind_partition_the_ranks(tp, cp, dp, pp):
    world = tp * cp * dp * pp
    for kind, coord in (("tp", "tp"), ("cp", "cp"), ("pp", "pp")):
        shape = group_shape(kind, tp, cp, dp, pp)
        seen = set()
        for r in range(world):
            c = coordinates(r, tp, cp, dp, pp)
            if c[coord] == 0:          # the group's first member
                group = members(shape, r)
                # members differ only in this coordinate, which runs 0..size-1
                assert [coordinates(m, tp, cp, dp, pp)[coord] for m in group] == list(range(shape.size))
                seen.update(group)
        assert seen == set(range(world))


def test_tensor_parallel_stays_in_the_node_and_data_parallel_leaves_it():
    tp8 = group_shape("tp", 8, 1, 128, 16)
    assert links(tp8, 8, SPANS) == {"members_per_domain": 8, "domains": 1, "scale_up_only": True, "tiers_crossed": []}
    dp = links(group_shape("dp", 8, 1, 128, 16), 8, SPANS)
    assert dp["members_per_domain"] == 1 and dp["domains"] == 128 and dp["tiers_crossed"] == ["leaf"]
    pp = links(group_shape("pp", 8, 1, 128, 16), 8, SPANS)
    assert pp["tiers_crossed"] == ["leaf", "spine"]       # stages 1,024 GPUs apart


def test_expert_parallel_is_carved_out_of_data_parallel():
    ep = group_shape("ep", 2, 1, 128, 1, ep=8)
    assert (ep.size, ep.stride) == (8, 2)
    edp = group_shape("expert_dp", 2, 1, 128, 1, ep=8)
    assert (edp.size, edp.stride) == (16, 16)


@given(tp=st.sampled_from([1, 2, 8]), dp=st.integers(1, 8), pp=st.integers(1, 4))
def test_dp_outermost_groups_partition_the_ranks(tp, dp, pp):
    """tp-cp-pp-dp (Llama 3's [TP, CP, PP, DP]): rank = tp + TP*(pp + PP*dp); every group of a kind
    holds the ranks that differ in that coordinate alone, and the groups tile the ranks."""
    def coords(r):
        return {"tp": r % tp, "pp": r // tp % pp, "dp": r // (tp * pp)}
    for kind in ("tp", "pp", "dp"):
        shape = group_shape(kind, tp, 1, dp, pp, order="tp-cp-pp-dp")
        seen = set()
        for r in range(tp * dp * pp):
            if coords(r)[kind] == 0:
                group = members(shape, r)
                assert [coords(m)[kind] for m in group] == list(range(shape.size))
                assert all({k: v for k, v in coords(m).items() if k != kind}
                           == {k: v for k, v in coords(r).items() if k != kind} for m in group)
                seen.update(group)
        assert seen == set(range(tp * dp * pp))


def test_dp_outermost_keeps_the_pipeline_in_the_leaf_and_sends_dp_across():
    pp = links(group_shape("pp", 8, 1, 128, 16, order="tp-cp-pp-dp"), 8, SPANS)
    assert pp["tiers_crossed"] == []                         # 16 stages x 8 GPUs = 128 GPUs < 256
    dp = links(group_shape("dp", 8, 1, 128, 16, order="tp-cp-pp-dp"), 8, SPANS)
    assert dp["tiers_crossed"] == ["leaf", "spine"] and dp["domains"] == 128
    # the gradient group's CP x DP ranks (uneven) drawn evenly: its size, one member per node, and
    # its span within 15 % of the real group's (both reach across the job)
    g = group_shape("dp", 8, 16, 8, 16, order="tp-cp-pp-dp")
    real_span = (8 - 1) * 8 * 16 * 16 + (16 - 1) * 8 + 1
    assert g.size == 128 and g.members_within(8) == 1
    assert abs((g.size - 1) * g.stride + 1 - real_span) < 0.15 * real_span


def test_meta_order_on_metas_cluster_keeps_pipeline_sends_off_the_oversubscribed_tier(scenario):
    """On Meta's RoCE cluster (1:7 above a 3,072-GPU pod) Megatron's order puts consecutive
    pipeline stages 128 nodes apart, across pods; Llama 3's order keeps a pipeline in a pod. The
    step's pipeline sends fall back to those of a non-blocking fabric."""
    from simulator.simulate import simulate
    meta = simulate(scenario("llama3-405b", "phases=null"), campaign=False)
    megatron = simulate(scenario("llama3-405b", "phases=null", "parallelism.rank_order=tp-cp-dp-pp"),
                        campaign=False)
    superpod = simulate(scenario("llama3-405b", "phases=null", "parallelism.rank_order=tp-cp-dp-pp",
                                 cluster="dgx-h100-superpod"), campaign=False)
    assert megatron.breakdown["pp_comm"] > 2 * meta.breakdown["pp_comm"]
    assert meta.breakdown["pp_comm"] <= superpod.breakdown["pp_comm"] * 1.01
    assert meta.step_time_s < megatron.step_time_s


def test_dp_outermost_refuses_expert_parallelism(scenario):
    import pytest
    from simulator.errors import ConfigError
    with pytest.raises(ConfigError, match="rank_order"):
        scenario("mixtral-8x7b", "parallelism.rank_order=tp-cp-pp-dp")


def test_the_yaml_key_accepts_exactly_the_orders_placement_knows():
    """parallelism.rank_order's Literal (config/workload.py) and topology/placement.ORDERS are two
    spellings of one list (topology never imports config): a new order must be added to both."""
    import typing

    from simulator.config.workload import ParallelismConfig
    from simulator.topology.placement import ORDERS
    assert typing.get_args(ParallelismConfig.model_fields["rank_order"].annotation) == ORDERS
    for order in ORDERS:                      # every accepted order resolves every group kind
        for kind in ("tp", "cp", "dp", "pp"):
            assert group_shape(kind, 2, 1, 2, 2, order=order).size >= 1
