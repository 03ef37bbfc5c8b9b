"""Direct networks: a 3D torus of GPUs (TPU-style) and a dragonfly of router groups.

Torus: Google TPU v4 joins chips in a 3D torus, six inter-chip links per chip, wrap-around links
closed by optical circuit switches (Jouppi et al., "TPU v4", ISCA 2023). Here every GPU is a vertex
with a link of ``hosts.nic_bandwidth`` to its +1 neighbour along each axis of length >= 2 (so up to
six ports per GPU; along an axis of length 2 the two cables join the same pair).

Dragonfly (Kim, Dally, Scott and Abts, "Technology-Driven, Highly-Scalable Dragonfly Topology",
ISCA 2008): groups of ``a`` routers, each with ``p`` terminal ports, all-to-all local links inside
a group and ``h`` global ports per router joining every pair of groups directly.
"""
from __future__ import annotations

import math

import networkx as nx

from simulator.topology.clos import add_leaf, down_ports, hosts_per_leaf
from simulator.topology.graph import Hosts, add_link, gpu
from simulator.topology.rail import unit_ranges

DRAGONFLY_NAMES = {1: "router", 2: "local", 3: "global"}


def balanced_dims(n: int) -> tuple[int, int, int]:
    """The most cube-like x <= y <= z with x * y * z == n."""
    best = (1, 1, n)
    for x in range(1, round(n ** (1 / 3)) + 2):
        if n % x:
            continue
        for y in range(x, math.isqrt(n // x) + 1):
            if (n // x) % y == 0:
                z = n // (x * y)
                if z >= y and z - x < best[2] - best[0]:
                    best = (x, y, z)
    return best


def torus3d(hosts: Hosts, dims: tuple[int, int, int] | None = None) -> nx.Graph:
    """A 3D torus of the hosts' GPUs, x fastest in the GPU index (``dims`` default: most cube-like)."""
    n = hosts.num_gpus
    dims = tuple(dims) if dims else balanced_dims(n)
    if len(dims) != 3 or math.prod(dims) != n:
        raise ValueError(f"torus dims {list(dims)} hold {math.prod(dims)} GPUs; expected three "
                         f"numbers whose product is the GPU count {n}")
    G = hosts.graph(with_nics=False)
    strides = (1, dims[0], dims[0] * dims[1])
    for i in range(n):
        coords = tuple((i // s) % d for s, d in zip(strides, dims))
        G.nodes[gpu(i)]["coords"] = coords
        for axis, size in enumerate(dims):
            if size >= 2:
                step = ((coords[axis] + 1) % size - coords[axis]) * strides[axis]
                add_link(G, gpu(i), gpu(i + step), hosts.nic_bandwidth, hosts.latency, 1)
    G.graph.update(fabric="torus3d", tier_names={1: "torus"}, torus_dims=dims)
    return G


def dragonfly_shape(hosts: Hosts, nodes_per_group: int, radix: int, o: float) -> tuple[int, int, int]:
    """(hosts per router, global ports per router, global links per pair of groups)."""
    per_router = hosts_per_leaf(hosts, radix, o)
    groups = math.ceil(hosts.num_nodes / nodes_per_group)
    a_max = math.ceil(min(nodes_per_group, hosts.num_nodes) / per_router)
    a_min = math.ceil((hosts.num_nodes - (groups - 1) * nodes_per_group) / per_router)
    global_ports = radix - down_ports(radix, o) - (a_max - 1)
    if global_ports < 0:
        raise ValueError(f"a dragonfly group of {a_max} routers needs {a_max - 1} local ports per router "
                         f"but radix {radix} leaves {a_max - 1 + global_ports}; expected smaller groups")
    if groups == 1:
        return per_router, global_ports, 0
    k = min(a_min, a_max) * global_ports // (groups - 1)
    if k < 1:
        raise ValueError(f"{groups} dragonfly groups need a global link between every pair, but a group "
                         f"of {a_min} routers has {a_min * global_ports} global ports "
                         f"(radix {radix}); expected larger groups, fewer groups or a larger radix")
    return per_router, global_ports, k


def dragonfly(hosts: Hosts, nodes_per_group: int, radix: int = 64, oversubscription: float = 1.0) -> nx.Graph:
    """Groups of ``nodes_per_group`` hosts; routers take whole hosts (``radix`` ports, terminal ports
    as a leaf with ``oversubscription``), link all-to-all in the group (tier-2 edges) and to every
    other group with the same number of global links (tier-3 edges), spread over the routers."""
    per_router, _, k = dragonfly_shape(hosts, nodes_per_group, radix, oversubscription)
    G = hosts.graph()
    groups, i = [], 0
    for g, nodes in enumerate(unit_ranges(hosts.num_nodes, nodes_per_group)):
        routers = []
        for first in range(nodes.start, nodes.stop, per_router):
            span = range(first, min(first + per_router, nodes.stop))
            routers.append(add_leaf(G, hosts, ("router", i), span, range(hosts.nics), group=g))
            i += 1
        for a in range(len(routers)):
            for b in range(a + 1, len(routers)):
                add_link(G, routers[a], routers[b], hosts.nic_bandwidth, hosts.latency, 2)
        groups.append(routers)
    _global_links(G, hosts, groups, k)
    G.graph.update(fabric="dragonfly", tier_names=DRAGONFLY_NAMES)
    return G


def _global_links(G: nx.Graph, hosts: Hosts, groups: list[list], k: int) -> None:
    """``k`` links between every pair of groups; group i's slots go round-robin over its routers."""
    def router(i: int, j: int, link: int):
        slot = (j if j < i else j - 1) * k + link
        return groups[i][slot % len(groups[i])]

    for i in range(len(groups)):
        for j in range(i + 1, len(groups)):
            for link in range(k):
                add_link(G, router(i, j, link), router(j, i, link), hosts.nic_bandwidth, hosts.latency, 3)
