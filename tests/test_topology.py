"""Topology generators: hand-counted small fabrics, bisection, tier_view against the built graph."""
import json
from collections import Counter

import networkx as nx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simulator.config.gpu import catalog_gpu
from simulator.config.cluster import ClusterConfig
from simulator.errors import ConfigError
from simulator.report.topology_plot import draw
from simulator.topology import (
    Hosts, bisection_bandwidth, build_cluster_graph, dragonfly, estimated_bisection, fat_tree,
    leaf_spine, rail_only, rail_optimized_fat_tree, scale_up, summary, tier_view,
    torus3d, view_summary,
)
from simulator.report.topology_report import load_cluster, topology_report
from tests.conftest import TOPOLOGIES

B = 50e9                          # 400 Gb/s per NIC and per switch port
H100 = catalog_gpu("h100-sxm")
SMALL = Hosts(4, 8)               # 4 nodes x 8 GPUs, one NIC per GPU
BUNDLED = sorted(TOPOLOGIES.glob("*.yaml"))


def roles(G):
    return Counter(v[0] for v in G)


def tier(G, t):
    return next(x for x in summary(G)["tiers"] if x["tier"] == t and x["kind"] == "network")


def degree_links(G, v):
    return sum(e["links"] for _, _, e in G.edges(v, data=True))


def cluster(kind="fat_tree", nodes=4, gpus=8, nics=None, **fabric):
    """A validated cluster of H100 nodes with 400 Gb/s NICs and the given fabric keys."""
    return ClusterConfig.model_validate({
        "name": "test", "gpu": "h100-sxm", "num_nodes": nodes,
        "node": {"gpus_per_node": gpus, "nics": nics, "nic_bandwidth": "400 Gb/s"},
        "fabric": {"kind": kind, **fabric}})


# --- generators, counted by hand -------------------------------------------------------------

def test_nvswitch_domains_of_a_node_and_of_an_nvl72_rack():
    G = scale_up(SMALL, bandwidth=450e9)
    assert roles(G) == {"gpu": 32, "nvswitch": 4}
    assert all(G.degree(("nvswitch", d)) == 8 for d in range(4))
    assert G.edges[("gpu", 9), ("nvswitch", 1)]["capacity"] == 450e9
    attrs = {"kind": "gpu", "node": 1, "local": 1, "rail": 1, "domain": 1, "tier": 0}
    assert attrs.items() <= G.nodes[("gpu", 9)].items()
    rack = scale_up(Hosts(18, 4), domain_size=72, bandwidth=900e9)
    assert roles(rack) == {"gpu": 72, "nvswitch": 1} and rack.degree(("nvswitch", 0)) == 72


def test_mesh_domain_splits_the_bandwidth_over_the_peers():
    G = scale_up(Hosts(1, 8), bandwidth=448e9, kind="infinity_fabric")      # MI300X: 7 x 64 GB/s
    assert G.number_of_edges() == 28 and all(d == 7 for _, d in G.degree())
    assert G.edges[("gpu", 0), ("gpu", 5)]["capacity"] == pytest.approx(64e9)


def test_leaf_spine_counts_and_bisection():
    G = leaf_spine(SMALL, radix=16)     # leaf: 8 down (one host) + 8 up; 32 uplinks -> 2 spines
    assert roles(G) == {"gpu": 32, "leaf": 4, "spine": 2}
    assert all(G.degree(("leaf", i)) == 10 for i in range(4))
    assert G.edges[("leaf", 0), ("spine", 1)]["links"] == 4
    assert degree_links(G, ("spine", 0)) == 16
    assert bisection_bandwidth(G) == 16 * B            # 16 NICs per half, 16 uplinks per half


def test_two_to_one_oversubscription_halves_the_uplink_capacity():
    flat, over = leaf_spine(SMALL, radix=16), leaf_spine(SMALL, radix=16, oversubscription=2)
    assert tier(over, 2)["total_capacity"] == tier(flat, 2)["total_capacity"] / 2 == 16 * B
    assert tier(over, 1)["oversubscription"] == 2.0 and tier(flat, 1)["oversubscription"] == 1.0
    assert roles(over)["spine"] == 1
    assert bisection_bandwidth(over) == bisection_bandwidth(flat) / 2


def test_three_tier_fat_tree_pods_and_cores():
    G = fat_tree(SMALL, tiers=3, radix=16, nodes_per_unit=2)
    assert roles(G) == {"gpu": 32, "leaf": 4, "spine": 4, "core": 2}
    assert [tier(G, t)["links"] for t in (1, 2, 3)] == [32, 32, 32]
    assert [tier(G, t)["span"] for t in (1, 2, 3)] == [8, 16, 32]
    assert bisection_bandwidth(G) == 16 * B
    thin = fat_tree(SMALL, tiers=3, radix=16, oversubscription=(1, 2), nodes_per_unit=2)
    assert tier(thin, 3)["links"] == 16 and tier(thin, 2)["oversubscription"] == 2.0
    assert bisection_bandwidth(thin) == 8 * B          # the pods are the halves


def test_rail_optimized_leaves_hold_one_rail_of_a_unit():
    G = rail_optimized_fat_tree(SMALL, nodes_per_unit=2, tiers=2, radix=16)
    assert roles(G) == {"gpu": 32, "leaf": 16, "spine": 2}
    leaf = ("leaf", 8 + 3)                             # unit 1, rail 3
    gpus = [v for v in G[leaf] if v[0] == "gpu"]
    assert sorted(G.nodes[v]["node"] for v in gpus) == [2, 3]
    assert {G.nodes[v]["rail"] for v in gpus} == {3} and G.nodes[leaf]["rail"] == 3
    assert bisection_bandwidth(G) == 16 * B


@pytest.mark.parametrize("units, leaves, spines, cables", [(1, 8, 4, 256), (4, 32, 16, 1024)])
def test_rail_optimized_matches_the_superpod_tables(units, leaves, spines, cables):
    """DGX SuperPOD H100 RA, compute fabric table: 1 SU 8 leaves / 4 spines, 4 SU 32 / 16."""
    G = rail_optimized_fat_tree(Hosts(32 * units, 8), nodes_per_unit=32, tiers=2, radix=64)
    assert (roles(G)["leaf"], roles(G)["spine"], tier(G, 2)["links"]) == (leaves, spines, cables)


def test_superpod_64_su_tier_view_matches_the_b200_ra_table():
    c, g = load_cluster(TOPOLOGIES / "dgx-h100-superpod.yaml")     # 64 SU, 2,048 nodes
    tiers = {t.name: t for t in tier_view(c, g)}
    assert [(tiers[n].switches, tiers[n].links) for n in ("leaf", "spine", "core")] == \
        [(512, 16384), (512, 16384), (256, 16384)]


def test_rail_only_joins_rails_only_through_nvlink():
    G = rail_only(SMALL, tiers=1)
    assert roles(G) == {"gpu": 32, "leaf": 8} and all(G.degree(("leaf", r)) == 4 for r in range(8))
    assert not nx.has_path(G, ("gpu", 0), ("gpu", 1))
    assert nx.has_path(nx.compose(G, scale_up(SMALL)), ("gpu", 0), ("gpu", 1))
    assert bisection_bandwidth(G) == 16 * B
    two = rail_only(SMALL, nodes_per_unit=2, tiers=2, radix=8)
    assert roles(two) == {"gpu": 32, "leaf": 16, "spine": 8}


def test_torus_has_six_ports_per_gpu_and_two_planes_across():
    G = torus3d(Hosts(8, 8), dims=(4, 4, 4))
    assert all(d == 6 for _, d in G.degree()) and G.number_of_edges() == 192
    assert bisection_bandwidth(G) == 2 * 16 * B
    flat = torus3d(SMALL)                               # (2, 4, 4): pairs along x share 2 cables
    assert all(degree_links(flat, v) == 6 for v in flat)
    assert bisection_bandwidth(flat) == 2 * 8 * B
    with pytest.raises(ValueError, match="product"):
        torus3d(SMALL, dims=(4, 4, 4))


def test_dragonfly_groups_are_joined_all_to_all():
    G = dragonfly(SMALL, nodes_per_group=1, radix=24)  # 12 terminal + 12 global ports, 4 groups
    assert roles(G) == {"gpu": 32, "router": 4}
    assert all(G.edges[("router", a), ("router", b)]["links"] == 4
               for a in range(4) for b in range(a + 1, 4))
    assert bisection_bandwidth(G) == 16 * B
    two = dragonfly(SMALL, nodes_per_group=2, radix=16)  # 2 routers per group, 7 global ports each
    assert tier(two, 2)["links"] == 2 and tier(two, 3)["links"] == 14
    assert bisection_bandwidth(two) == 14 * B


def test_unbuildable_fabrics_say_what_to_change():
    with pytest.raises(ValueError, match="share none"):
        rail_optimized_fat_tree(SMALL, nodes_per_unit=2, tiers=2, radix=8)
    with pytest.raises(ValueError, match="nodes_per_unit <= 32"):
        rail_optimized_fat_tree(Hosts(40, 8), nodes_per_unit=40)
    with pytest.raises(ConfigError, match="fabric.tiers"):
        tier_view(cluster("leaf_spine", tiers=3), H100)
    with pytest.raises(ConfigError, match="torus_dims"):
        build_cluster_graph(cluster("torus3d", torus_dims=[4, 4, 4]), H100)


# --- the composed cluster graph --------------------------------------------------------------

def test_shared_nics_hang_between_gpus_and_leaf():
    c, g = load_cluster(TOPOLOGIES / "jean-zay-a100.yaml")            # 8 GPUs, 4 NICs per node
    G = build_cluster_graph(c, g, num_nodes=4)
    assert roles(G)["nic"] == 16
    nic = ("nic", 1, 2)
    assert sorted(v[1] for v in G[nic] if v[0] == "gpu") == [12, 13]
    assert [v[0] for v in G[nic] if v[0] != "gpu"] == ["leaf"]
    assert {G.nodes[("gpu", 12)]["rail"], G.nodes[("gpu", 13)]["rail"]} == {2}


def test_nvl72_cluster_has_rack_sized_domains():
    c, g = load_cluster(TOPOLOGIES / "gb200-nvl72.yaml")
    G = build_cluster_graph(c, g, num_nodes=36)                       # two racks
    assert roles(G)["nvswitch"] == 2 and G.degree(("nvswitch", 1)) == 72
    assert G.edges[("gpu", 72), ("nvswitch", 1)]["capacity"] == 900e9


def test_tier_oversubscription_key_sets_each_switch_tier():
    G = build_cluster_graph(cluster(tiers=3, nodes_per_unit=2, tier_oversubscription=[2, 4]), H100)
    s = summary(G)["tiers"]           # leaf: 16 down, 8 up; spine: 16 down, 4 up
    assert [t["oversubscription"] for t in s if t["kind"] == "network"] == [2.0, 4.0, None]


@pytest.mark.parametrize("path", BUNDLED, ids=lambda p: p.stem)
@pytest.mark.parametrize("num_nodes", [1, 4, 7, 37])
def test_tier_view_agrees_with_the_built_graph(path, num_nodes):
    c, g = load_cluster(path)
    assert view_summary(c, g, num_nodes) == summary(build_cluster_graph(c, g, num_nodes))


def test_tier_view_of_100k_gpus_builds_no_graph(monkeypatch):
    c, g = load_cluster(TOPOLOGIES / "dgx-h100-superpod.yaml")
    big = c.model_copy(update={"num_nodes": 12_500})                   # 100,000 GPUs

    def no_graph(*args, **kwargs):
        raise AssertionError("tier_view built a graph")
    monkeypatch.setattr(nx.Graph, "__init__", no_graph)
    tiers = tier_view(big, g)
    assert [(t.name, t.links, t.span) for t in tiers] == [
        ("nvswitch", 100_000, 8), ("leaf", 100_000, 32), ("spine", 100_000, 1024),
        ("core", 100_000, 100_000)]
    assert estimated_bisection(big, g) == 50_000 * B


# --- properties ------------------------------------------------------------------------------

KINDS = ["fat_tree", "leaf_spine", "rail_optimized_fat_tree", "rail_only", "torus3d", "dragonfly",
         "single_switch"]


@st.composite
def small_clusters(draw_):
    kind = draw_(st.sampled_from(KINDS))
    tiers = draw_(st.sampled_from({"fat_tree": [1, 2, 3], "rail_optimized_fat_tree": [2, 3],
                                   "rail_only": [1, 2]}.get(kind, [2])))
    gpus = draw_(st.sampled_from([2, 4, 8]))
    nics = draw_(st.sampled_from([None, gpus // 2, 2 * gpus]))
    return cluster(kind, nodes=2 * draw_(st.integers(1, 6)), gpus=gpus, nics=nics, tiers=tiers,
                   nodes_per_unit=draw_(st.integers(1, 5)),
                   switch_radix=draw_(st.sampled_from([16, 24, 32, 64])),
                   tier_oversubscription=draw_(st.lists(st.sampled_from([1, 1.5, 2, 3]), max_size=2))
                   or None)


PROPERTY = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _built(c):
    try:
        return build_cluster_graph(c, H100)
    except ConfigError:
        with pytest.raises(ConfigError):
            tier_view(c, H100)
        return None


@PROPERTY
@given(small_clusters())
def test_tier_view_agrees_with_the_graph_on_random_fabrics(c):
    G = _built(c)
    if G is not None:
        assert view_summary(c, H100) == summary(G)


@PROPERTY
@given(small_clusters())
def test_bisection_is_at_most_half_the_nic_capacity(c):
    """Halves hold whole nodes (even node counts, a domain per node): no NVLink is cut."""
    G = _built(c)
    if G is not None:
        nics = c.num_nodes * (c.node.nics or c.node.gpus_per_node) * B
        ports = 6 * c.num_nodes * c.node.gpus_per_node * B          # a torus has no NICs
        limit = ports if c.fabric.kind == "torus3d" else nics
        assert bisection_bandwidth(G) <= limit / 2 + 1e-3


@pytest.mark.parametrize("c", [
    cluster("rail_optimized_fat_tree", nodes=16, gpus=2, tiers=3, nodes_per_unit=2, switch_radix=6,
            tier_oversubscription=[1, 2]),        # 2 rails x 2 pods of 4 units; the pods are the halves
    cluster("fat_tree", nodes=8, tiers=3, nodes_per_unit=2, switch_radix=32, oversubscription=3),
    cluster("leaf_spine", nodes=8, switch_radix=32, oversubscription=2),
    cluster("torus3d", nodes=8, torus_dims=[4, 4, 4]),
    cluster("dragonfly", nodes=8, nodes_per_unit=2, switch_radix=32),
    cluster("rail_only", nodes=8, tiers=2, nodes_per_unit=2, switch_radix=16),
], ids=["rail-3tier", "fat-tree-3tier", "leaf-spine", "torus", "dragonfly", "rail-only"])
def test_estimated_bisection_equals_the_min_cut_on_even_fabrics(c):
    assert estimated_bisection(c, H100) == pytest.approx(bisection_bandwidth(build_cluster_graph(c, H100)))


# --- report and drawing ----------------------------------------------------------------------

@pytest.mark.parametrize("path", BUNDLED, ids=lambda p: p.stem)
def test_topology_report_of_each_bundled_cluster(path):
    r = topology_report(path)
    json.dumps(r)
    c, _ = load_cluster(path)
    assert (r["nodes"], r["gpus"]) == (c.num_nodes, c.num_nodes * c.node.gpus_per_node)
    assert r["bisection_bandwidth"] > 0 and r["tiers"][0]["kind"] == "scale_up"
    assert r["bisection_method"] == ("min_cut" if r["gpus"] <= 4096 else "tiers")


def test_small_report_measures_the_graph():
    r = topology_report(TOPOLOGIES / "dgx-h100-superpod.yaml", num_nodes=8)
    assert r["bisection_method"] == "min_cut" and r["bisection_bandwidth"] == 32 * B
    assert r["bisection_per_gpu"] == B


def test_draw_writes_a_png(tmp_path):
    c, g = load_cluster(TOPOLOGIES / "jean-zay-a100.yaml")
    out = draw(build_cluster_graph(c, g, num_nodes=4), tmp_path / "fabric.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="too many"):
        draw(nx.empty_graph(3001), tmp_path / "big.png")
