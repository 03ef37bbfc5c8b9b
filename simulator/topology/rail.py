"""Rail-optimised fat tree (NVIDIA DGX SuperPOD) and rail-only fabrics.

A scalable unit (SU) of ``nodes_per_unit`` hosts has one leaf per rail: NIC ``j`` of every host in
the SU goes to leaf ``(SU, j)``, so same-rail traffic inside an SU is one switch hop (DGX SuperPOD
H100 reference architecture, RA-11333-001, "Compute fabric": 32 nodes per SU, 8 leaves per SU,
"traffic per rail ... is always one hop away from the other 31 nodes in a SU"). Two tiers: spines
shared by every leaf (4 SU: 32 leaves, 16 spines). Three tiers: each rail's leaves form pods of up
to ``d2`` SUs (``d2`` = a spine's downlinks) with their own spines, and core switches join all spines
(16 SU: 128 leaves, 128 spines, 64 cores; 64 SU: 512, 512, 256, as in the DGX SuperPOD B200 RA table).
Rail-only (Wang et al., "Rail-only: A Low-Cost High-Performance Network for Training LLMs with
Trillion Parameters", 2023) drops every switch that joins different rails: GPUs on different rails
talk through NVLink inside their host only.
"""
from __future__ import annotations

from collections.abc import Sequence

import networkx as nx

from simulator.topology.clos import (
    FAT_TREE_NAMES, add_layer, add_leaf, core_groups, down_ports, per_tier,
)
from simulator.topology.graph import Hosts, chunks


def unit_ranges(num_nodes: int, nodes_per_unit: int) -> list[range]:
    out, first = [], 0
    for size, count in chunks(num_nodes, nodes_per_unit):
        for _ in range(count):
            out.append(range(first, first + size))
            first += size
    return out


def check_unit(nodes_per_unit: int, num_nodes: int, radix: int, o_leaf: float) -> None:
    d1 = down_ports(radix, o_leaf)
    if min(nodes_per_unit, num_nodes) > d1:
        raise ValueError(f"a rail leaf takes one NIC of each of the {nodes_per_unit} hosts of a unit but "
                         f"has {d1} downlinks (radix {radix}, oversubscription {o_leaf}); expected "
                         f"nodes_per_unit <= {d1}")


def rail_leaves(G: nx.Graph, hosts: Hosts, nodes_per_unit: int) -> list[list]:
    """One leaf per (unit, rail): ``leaves[unit][rail]``."""
    units = unit_ranges(hosts.num_nodes, nodes_per_unit)
    k = hosts.nics
    return [[add_leaf(G, hosts, ("leaf", u * k + r), nodes, [r], unit=u, rail=r) for r in range(k)]
            for u, nodes in enumerate(units)]


def rail_optimized_fat_tree(hosts: Hosts, nodes_per_unit: int = 32, tiers: int = 2, radix: int = 64,
                            oversubscription: float | Sequence[float] = 1.0) -> nx.Graph:
    """DGX SuperPOD-style fabric: rail leaves per SU, then shared spines (2 tiers) or per-rail
    spine pods under a core (3 tiers). ``oversubscription`` per switch tier from the leaf up."""
    if tiers not in (2, 3):
        raise ValueError(f"a rail-optimised fat tree has 2 or 3 switch tiers (got {tiers})")
    o = per_tier(oversubscription, tiers - 1)
    check_unit(nodes_per_unit, hosts.num_nodes, radix, o[0])
    G = hosts.graph()
    leaves = rail_leaves(G, hosts, nodes_per_unit)
    if tiers == 2:
        add_layer(G, [[leaf for unit in leaves for leaf in unit]], hosts, "spine", 2, radix, o[0])
    else:
        d2 = down_ports(radix, o[1])        # units per pod: one leaf each per rail
        pods = [[unit[r] for unit in leaves[b:b + d2]]
                for b in range(0, len(leaves), d2) for r in range(hosts.nics)]
        spines = add_layer(G, pods, hosts, "spine", 2, d2, o[0])
        add_layer(G, core_groups(spines), hosts, "core", 3, radix, o[1])
    G.graph.update(fabric="rail_optimized_fat_tree", tier_names=FAT_TREE_NAMES)
    return G


def rail_only(hosts: Hosts, nodes_per_unit: int = 32, tiers: int = 2, radix: int = 64,
              oversubscription: float = 1.0) -> nx.Graph:
    """One network per rail and nothing between rails: a rail switch per rail (1 tier, a chassis
    whose radix is not enforced) or rail leaves per unit under per-rail spines (2 tiers)."""
    if tiers not in (1, 2):
        raise ValueError(f"a rail-only fabric has 1 or 2 switch tiers (got {tiers})")
    G = hosts.graph()
    k = hosts.nics
    if tiers == 1:
        for r in range(k):
            add_leaf(G, hosts, ("leaf", r), range(hosts.num_nodes), [r], rail=r)
        G.graph.update(fabric="rail_only", tier_names={1: "rail"})
        return G
    o = per_tier(oversubscription, 1)
    check_unit(nodes_per_unit, hosts.num_nodes, radix, o[0])
    leaves = rail_leaves(G, hosts, nodes_per_unit)
    add_layer(G, [[unit[r] for unit in leaves] for r in range(k)], hosts, "spine", 2, radix, o[0])
    G.graph.update(fabric="rail_only", tier_names=FAT_TREE_NAMES)
    return G
