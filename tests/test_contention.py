"""The symmetric per-tier contention model against exact flow-level max-min on small fabrics."""
import networkx as nx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator.cost.contention import FabricTier, ring_bandwidth, ring_crossings
from simulator.cost.flows import max_min_rates

NIC = 1.0


def two_tier(units: int, per_unit: int, oversub: float, spines: int = 2) -> nx.Graph:
    """GPUs (one per node) under non-blocking unit leaves; leaves to spines at oversub:1."""
    g = nx.Graph()
    for u in range(units):
        for i in range(per_unit):
            g.add_edge(("gpu", u * per_unit + i), ("leaf", u), capacity=NIC)
        for sp in range(spines):
            g.add_edge(("leaf", u), ("spine", sp), capacity=per_unit * NIC / oversub / spines)
    return g


def ring_flows(total: int, n: int, stride: int) -> list[tuple]:
    """Ring neighbour flows of every group: groups of n ranks, stride apart, tiling 0..total-1."""
    flows = []
    block = n * stride
    for b in range(0, total, block):
        for off in range(stride):
            members = [b + off + j * stride for j in range(n)]
            flows += [(("gpu", members[j]), ("gpu", members[(j + 1) % n])) for j in range(n)]
    return flows


@pytest.mark.parametrize("units,per_unit,oversub,n,stride", [
    (4, 4, 1.0, 16, 1), (4, 4, 2.0, 16, 1), (4, 4, 4.0, 4, 4), (4, 4, 4.0, 2, 8), (2, 8, 2.0, 4, 4),
    (4, 4, 2.0, 8, 2), (4, 4, 3.0, 4, 1),
])
def test_symmetric_model_matches_max_min(units, per_unit, oversub, n, stride):
    total = units * per_unit
    g = two_tier(units, per_unit, oversub)
    exact = min(max_min_rates(g, ring_flows(total, n, stride)))
    tiers = (FabricTier("spine", per_unit, NIC / oversub),)
    assert ring_bandwidth(n, stride, tiers, total, NIC) == pytest.approx(exact, rel=1e-9)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(2, 64), stride=st.sampled_from([1, 2, 4, 8, 16]), span=st.sampled_from([4, 8, 16, 32]))
def test_crossings_by_enumeration(n, stride, span):
    members = [j * stride for j in range(n)]
    brute = sum(1 for j in range(n) if members[j] // span != members[(j + 1) % n] // span)
    assert ring_crossings(n, stride, span) == brute


@settings(max_examples=40, deadline=None)
@given(o1=st.floats(1, 8), o2=st.floats(1, 8), n=st.sampled_from([2, 4, 8, 16]), stride=st.sampled_from([1, 2, 4, 8]))
def test_more_oversubscription_is_never_faster(o1, o2, n, stride):
    lo, hi = sorted((o1, o2))
    bw = [ring_bandwidth(n, stride, (FabricTier("spine", 4, NIC / o),), 64, NIC) for o in (lo, hi)]
    assert bw[1] <= bw[0]


def test_spine_oversubscription_hits_all_to_all_and_cross_unit_pipelines_not_nvlink(scenario):
    from simulator import simulate

    def step(name, *sets):
        return simulate(scenario(name, *sets)).step_time_s

    moe = ["cluster.fabric.nodes_per_unit=4", "cluster.num_nodes=32"]
    assert step("mixtral-8x7b", *moe, "cluster.fabric.oversubscription=4") > \
        step("mixtral-8x7b", *moe, "cluster.fabric.oversubscription=1")
    pp = ["parallelism.pipeline_model_parallel_size=4", "cluster.fabric.nodes_per_unit=4", "cluster.num_nodes=256",
          "parallelism.virtual_pipeline_model_parallel_size=null"]
    assert step("llama3-70b", *pp, "cluster.fabric.oversubscription=4") > \
        step("llama3-70b", *pp, "cluster.fabric.oversubscription=1")
    nvlink_only = ["parallelism.tensor_model_parallel_size=8", "training.global_batch_size=8", "num_gpus=8"]
    assert step("llama3-8b", *nvlink_only, "cluster.fabric.oversubscription=4") == \
        step("llama3-8b", *nvlink_only, "cluster.fabric.oversubscription=1")
