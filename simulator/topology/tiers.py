"""Per-tier view of a cluster's fabric without building its graph: instant at 100K GPUs.

``tier_view`` predicts exactly what ``summary(build_cluster_graph(...))["tiers"]`` measures (tests
check it on small clusters); ``view_summary`` and ``estimated_bisection`` stand in for ``summary``
and ``bisection_bandwidth`` when the graph would be too big to build or cut.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING

from simulator.topology.analysis import Tier
from simulator.memo import by_identity
from simulator.topology.build import FabricParams, config_errors, fabric_params
from simulator.topology.clos import FAT_TREE_NAMES
from simulator.topology.direct import DRAGONFLY_NAMES
from simulator.topology.graph import HOST, NETWORK, SCALE_UP, chunks
from simulator.topology.levels import LEVELS, Level
from simulator.topology.scaleup import MESH_KINDS

if TYPE_CHECKING:        # annotations only: the topology takes config objects, never imports config
    from simulator.config.cluster import ClusterConfig
    from simulator.config.gpu import GPUSpec

NAMES = {"single_switch": {1: "switch"}, "torus3d": {1: "torus"}, "dragonfly": DRAGONFLY_NAMES}


def _scale_up(p: FabricParams) -> list[Tier]:
    n, size = p.hosts.num_gpus, p.domain_size
    if size < 2:
        return []
    domains = chunks(n, size)
    mesh = p.scale_up_kind in MESH_KINDS
    links = sum(c * s * (s - 1) // 2 for s, c in domains) if mesh else n
    if not links:
        return []
    cap = p.scale_up_bandwidth / (size - 1) if mesh else p.scale_up_bandwidth
    return [Tier(0, SCALE_UP, p.scale_up_kind, links, cap, p.scale_up_latency, min(size, n),
                 0 if mesh else sum(c for _, c in domains), None)]


def _host(p: FabricParams) -> list[Tier]:
    h = p.hosts
    if not h.shared_nics or p.kind == "torus3d":
        return []
    return [Tier(0, HOST, "nic", h.num_gpus, h.nic_bandwidth, 0.0, h.gpus_per_rail, 0, None)]


def _names(p: FabricParams) -> dict[int, str]:
    if p.kind == "rail_only" and p.tiers == 1:
        return {1: "rail"}
    if p.kind == "fat_tree" and p.tiers == 1:
        return NAMES["single_switch"]
    return NAMES.get(p.kind, FAT_TREE_NAMES)


def _network(p: FabricParams, levels: list[Level]) -> list[Tier]:
    names, h = _names(p), p.hosts
    return [Tier(lv.tier, NETWORK, names[lv.tier], lv.links, h.nic_bandwidth, h.latency, lv.span,
                 lv.switches, lv.links / lv.up if lv.up else None) for lv in levels]


def _levels(p: FabricParams) -> list[Level]:
    with config_errors():
        return LEVELS[p.kind](p)


def tier_view(cluster: ClusterConfig, gpu: GPUSpec, num_nodes: int | None = None) -> list[Tier]:
    """Each tier's links, per-link capacity, span and oversubscription, from the config alone."""
    p = fabric_params(cluster, gpu, num_nodes)
    return _scale_up(p) + _host(p) + _network(p, _levels(p))


@by_identity()   # frozen cluster and GPU: the cost model and the power model share one view
def tier_tuple(cluster: ClusterConfig, gpu: GPUSpec) -> tuple[Tier, ...]:
    """``tier_view`` of the whole cluster as a tuple, remembered per (cluster, GPU)."""
    return tuple(tier_view(cluster, gpu))


def view_summary(cluster: ClusterConfig, gpu: GPUSpec, num_nodes: int | None = None) -> dict:
    """What ``summary`` of the built graph would say, computed from ``tier_view``."""
    p = fabric_params(cluster, gpu, num_nodes)
    tiers = tier_view(cluster, gpu, num_nodes)
    return {
        "fabric": p.kind,
        "scale_up": p.scale_up_kind,
        "gpus": p.hosts.num_gpus,
        "nodes": p.hosts.num_nodes,
        "switches": sum(t.switches for t in tiers),
        "links": sum(t.links for t in tiers),
        "tiers": [t.as_dict() for t in tiers],
    }


def estimated_bisection(cluster: ClusterConfig, gpu: GPUSpec, num_nodes: int | None = None) -> float | None:
    """Bisection bandwidth (bytes/s) from the tier counts, taking blocks below a tier as alike.

    Trees: the first half of the GPUs is whole blocks under some tier, whose uplinks are cut, plus a
    remainder cut the same way one tier lower. A torus: the two planes across its last axis. A
    dragonfly: the terminal links, or the global links between the halves' groups. None when the
    halves would split a scale-up domain (or no rule applies).
    """
    p = fabric_params(cluster, gpu, num_nodes)
    levels = _levels(p)
    h = p.hosts
    n, cap = h.num_gpus, h.nic_bandwidth
    base = max(p.domain_size, 1) * (h.gpus_per_rail if h.shared_nics else 1)
    if n < 2 or not levels or (n // 2) % base:
        return None
    half = n // 2
    if p.kind == "torus3d":
        axis = max(i for i, d in enumerate(p.torus_dims) if d >= 2)
        size = p.torus_dims[axis]
        return 2 * (n // size) * cap if size % 2 == 0 else None
    if p.kind == "dragonfly":
        return _dragonfly_cut(p, levels, half)
    blocks = [base]
    for lv in levels:
        blocks.append(math.lcm(blocks[-1], lv.block))
    per_block = [lv.links * blocks[i] / n for i, lv in enumerate(levels)]
    cut = _prefix_cut(half, len(levels), blocks, per_block)
    return cut * cap if math.isfinite(cut) else None


def _prefix_cut(s: int, top: int, blocks: list[int], per_block: list[float]) -> float:
    """Cables to cut to separate ``s`` GPUs inside one block of tier ``top`` from the rest:
    whole blocks below tier ``i`` lose their tier-``i`` uplinks, the remainder is cut lower down."""
    if s == 0:
        return 0.0
    best = math.inf
    for i in range(top):
        q, r = divmod(s, blocks[i])
        best = min(best, q * per_block[i] + _prefix_cut(r, i, blocks, per_block))
    return best


def _dragonfly_cut(p: FabricParams, levels: list[Level], half: int) -> float:
    cap, group = p.hosts.nic_bandwidth, p.nodes_per_unit * p.hosts.gpus_per_node
    options = [levels[0].links * cap / 2]
    glob = [lv for lv in levels if lv.tier == 3]
    if glob and half % group == 0:
        groups = math.ceil(p.hosts.num_gpus / group)
        a = half // group
        options.append(glob[0].links // (groups * (groups - 1) // 2) * a * (groups - a) * cap)
    return min(options)
