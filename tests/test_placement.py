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
