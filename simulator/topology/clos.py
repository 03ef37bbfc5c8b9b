"""Folded-Clos fabrics: a single switch, two-tier leaf-spine and three-tier fat tree.

Switches have ``radix`` ports at the NIC's speed. A switch tier with oversubscription ``o`` (downlink
capacity / uplink capacity) gives each switch ``ceil(down / o)`` uplinks for its ``down`` used
downlinks, so a partly filled switch (the last leaf, a small build) keeps the ratio; a full one has
the most downlinks ``d`` with ``d + ceil(d / o) <= radix`` (32 + 32 at radix 64 and 1:1, 42 + 21 at
2:1). The uplinks of a pod's lower switches are dealt round-robin to ``ceil(uplinks / d_upper)``
upper switches, so every full leaf reaches every spine of its pod once or in parallel bundles, as
in NVIDIA's DGX SuperPOD tables (4 SU: 32 leaves x 32 uplinks over 16 spines, two cables per pair).
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import networkx as nx

from simulator.topology.graph import Hosts, add_link, add_switch, chunks

FAT_TREE_NAMES = {1: "leaf", 2: "spine", 3: "core"}


def per_tier(oversubscription: float | Sequence[float], n: int = 2) -> tuple[float, ...]:
    """Oversubscription of each switch tier from the leaf up, padded with 1 (non-blocking)."""
    o = [oversubscription] if isinstance(oversubscription, (int, float)) else list(oversubscription)
    if len(o) > n or any(x < 1 for x in o):
        raise ValueError(f"oversubscription per switch tier: expected at most {n} values >= 1 (got {o})")
    return tuple(float(x) for x in o) + (1.0,) * (n - len(o))


def up_ports(down: int, oversubscription: float) -> int:
    """Uplinks a switch with ``down`` downlinks needs to keep ``down / up <= oversubscription``."""
    return math.ceil(round(down / oversubscription, 9))


def down_ports(radix: int, oversubscription: float) -> int:
    """The most downlinks a switch of ``radix`` ports can serve, keeping ports for its uplinks."""
    d = int(radix * oversubscription / (1 + oversubscription)) + 1
    while d > 0 and d + up_ports(d, oversubscription) > radix:
        d -= 1
    if d < 1:
        raise ValueError(f"switch radix {radix} leaves no downlink at oversubscription {oversubscription}")
    return d


def check_reach(role: str, lowers: int, uplinks: int, uppers: int) -> None:
    """Two lower switches must share an upper one: their round-robin windows have to overlap."""
    if lowers > 1 and uplinks < uppers and 2 * uplinks <= uppers:
        raise ValueError(
            f"{lowers} switches with {uplinks} uplinks each need {uppers} {role} switches, so two of "
            f"them may share none (expected at most {2 * uplinks - 1}); use a larger switch radix, "
            "smaller scalable units or one more tier")


def down_links(G: nx.Graph, s) -> int:
    tier = G.nodes[s]["tier"]
    return sum(e["links"] for _, _, e in G.edges(s, data=True) if e["tier"] == tier)


def add_leaf(G: nx.Graph, hosts: Hosts, name: tuple, nodes: Iterable[int], rails: Iterable[int],
             **attrs) -> tuple:
    """A tier-1 switch wired to NIC ``rails`` of each host in ``nodes``."""
    leaf = add_switch(G, name, 1, **attrs)
    for n in nodes:
        for j in rails:
            add_link(G, hosts.port(n, j), leaf, hosts.nic_bandwidth, hosts.latency, 1)
    return leaf


def add_layer(G: nx.Graph, pods: list[list], hosts: Hosts, role: str, tier: int, down_max: int,
              o_below: float) -> list[list]:
    """Switches of ``tier`` above each pod of lower switches, their uplinks dealt round-robin."""
    start = sum(1 for v in G if v[0] == role)
    out = []
    for pod in pods:
        ups = [up_ports(down_links(G, low), o_below) for low in pod]
        n = math.ceil(sum(ups) / down_max)
        check_reach(role, len(pod), max(ups), n)
        uppers = [add_switch(G, (role, start + k), tier, pod=len(out)) for k in range(n)]
        start += n
        m = 0
        for low, u in zip(pod, ups):
            for _ in range(u):
                add_link(G, low, uppers[m % n], hosts.nic_bandwidth, hosts.latency, tier)
                m += 1
        out.append(uppers)
    return out


def core_groups(spine_pods: list[list]) -> list[list]:
    """Spine j of every pod joins core group j, as in the k-ary fat tree (Al-Fares, Loukissas and
    Vahdat, SIGCOMM 2008): any two pods meet in every group."""
    width = max(len(pod) for pod in spine_pods)
    return [[pod[j] for pod in spine_pods if j < len(pod)] for j in range(width)]


def single_switch(hosts: Hosts) -> nx.Graph:
    """Every NIC on one switch (a chassis: the radix is not enforced)."""
    G = hosts.graph()
    add_leaf(G, hosts, ("switch", 0), range(hosts.num_nodes), range(hosts.nics))
    G.graph.update(fabric="single_switch", tier_names={1: "switch"})
    return G


def leaf_groups(num_nodes: int, unit: int, per_leaf: int) -> list[list[range]]:
    """Hosts packed onto leaves of ``per_leaf`` hosts, leaves never straddling a unit: pods of ranges."""
    pods, first = [], 0
    for size, count in chunks(num_nodes, unit):
        for _ in range(count):
            pod = []
            for lsize, lcount in chunks(size, per_leaf):
                for _ in range(lcount):
                    pod.append(range(first, first + lsize))
                    first += lsize
            pods.append(pod)
    return pods


def hosts_per_leaf(hosts: Hosts, radix: int, o_leaf: float) -> int:
    d1 = down_ports(radix, o_leaf)
    if hosts.nics > d1:
        raise ValueError(f"a host's {hosts.nics} NICs do not fit on one leaf of {d1} downlinks "
                         f"(radix {radix}, oversubscription {o_leaf})")
    return d1 // hosts.nics


def fat_tree(hosts: Hosts, tiers: int = 2, radix: int = 64,
             oversubscription: float | Sequence[float] = 1.0,
             nodes_per_unit: int | None = None) -> nx.Graph:
    """A folded Clos of 1-3 switch tiers; whole hosts per leaf; with 3 tiers a pod is a unit of hosts.

    ``oversubscription`` is per switch tier from the leaf up (a single number: the leaf).
    """
    if tiers not in (1, 2, 3):
        raise ValueError(f"a fat tree has 1 to 3 switch tiers (got {tiers})")
    if tiers == 1:
        return single_switch(hosts)
    o = per_tier(oversubscription, tiers - 1)
    unit = (nodes_per_unit or hosts.num_nodes) if tiers == 3 else hosts.num_nodes
    G = hosts.graph()
    pods, i = [], 0
    for p, ranges in enumerate(leaf_groups(hosts.num_nodes, unit, hosts_per_leaf(hosts, radix, o[0]))):
        pods.append([add_leaf(G, hosts, ("leaf", i + k), r, range(hosts.nics), pod=p)
                     for k, r in enumerate(ranges)])
        i += len(ranges)
    if tiers == 2:
        add_layer(G, [[leaf for pod in pods for leaf in pod]], hosts, "spine", 2, radix, o[0])
    else:
        spines = add_layer(G, pods, hosts, "spine", 2, down_ports(radix, o[1]), o[0])
        add_layer(G, core_groups(spines), hosts, "core", 3, radix, o[1])
    G.graph.update(fabric="fat_tree", tier_names=FAT_TREE_NAMES)
    return G


def leaf_spine(hosts: Hosts, radix: int = 64, oversubscription: float = 1.0) -> nx.Graph:
    """Two-tier leaf-spine: a fat tree whose spines are the top."""
    G = fat_tree(hosts, 2, radix, oversubscription)
    G.graph["fabric"] = "leaf_spine"
    return G
