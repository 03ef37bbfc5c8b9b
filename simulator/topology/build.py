"""A cluster YAML's fabric as a graph: scale-up domains plus the scale-out network it names.

``fabric_params`` resolves the config once (defaults, per-tier oversubscription, checks) for both
``build_cluster_graph`` and the graph-free ``tier_view``, so the two cannot read it differently.
"""
from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

import networkx as nx

from simulator.errors import ConfigError
from simulator.topology.clos import fat_tree, per_tier, single_switch
from simulator.topology.direct import balanced_dims, dragonfly, torus3d
from simulator.topology.graph import Hosts
from simulator.topology.rail import rail_only, rail_optimized_fat_tree
from simulator.topology.scaleup import scale_up

if TYPE_CHECKING:        # annotations only: the topology takes config objects, never imports config
    from simulator.config.cluster import ClusterConfig
    from simulator.config.gpu import GPUSpec

PCIE_FALLBACK = 32e9      # PCIe Gen4 x16 per direction, when neither YAML nor catalog gives NVLink
TIERS_ALLOWED = {"fat_tree": (1, 2, 3), "leaf_spine": (2,), "rail_optimized_fat_tree": (2, 3),
                 "rail_only": (1, 2)}


@dataclass(frozen=True)
class FabricParams:
    """Everything the generators need, in SI units, with the YAML defaults filled in."""

    hosts: Hosts
    kind: str
    tiers: int
    radix: int
    oversubscription: tuple[float, float]     # leaf, spine (down / up capacity)
    nodes_per_unit: int
    torus_dims: tuple[int, int, int] | None
    domain_size: int
    scale_up_kind: str
    scale_up_bandwidth: float
    scale_up_latency: float


@contextmanager
def config_errors(path: str = "fabric"):
    """A structure the generators cannot build is a malformed cluster (exit 2), not a bug."""
    try:
        yield
    except ValueError as exc:
        raise ConfigError(str(exc), path=path) from None


def _uplink_tiers(kind: str, tiers: int) -> int:
    """Switch tiers that have uplinks (the top tier has none; a torus has no switches)."""
    if kind in ("torus3d", "single_switch"):
        return 0
    return 1 if kind == "dragonfly" else max(tiers - 1, 0)


def _oversubscription(cluster: ClusterConfig) -> tuple[float, float]:
    """Per switch tier; by default ``fabric.oversubscription`` where traffic leaves a scalable unit:
    the spines of a three-tier fat tree (a pod is a unit), the leaves otherwise."""
    f = cluster.fabric
    if f.tier_oversubscription is not None:
        with config_errors("fabric.tier_oversubscription"):
            o = per_tier(f.tier_oversubscription, _uplink_tiers(f.kind, f.tiers))
        return (o + (1.0, 1.0))[:2]
    if f.kind == "fat_tree" and f.tiers == 3:
        return (1.0, f.oversubscription)
    return (f.oversubscription, 1.0)


def _torus_dims(cluster: ClusterConfig, num_gpus: int, small: bool) -> tuple[int, int, int] | None:
    dims = cluster.fabric.torus_dims
    if cluster.fabric.kind != "torus3d":
        return None
    if dims is None or (small and math.prod(dims) != num_gpus):
        return balanced_dims(num_gpus)    # a smaller build than the YAML's: the most cube-like torus
    if math.prod(dims) != num_gpus:
        raise ConfigError("torus dims do not hold the cluster's GPUs", path="fabric.torus_dims",
                          value=list(dims), expected=f"a product of {num_gpus}")
    return tuple(dims)


def fabric_params(cluster: ClusterConfig, gpu: GPUSpec, num_nodes: int | None = None) -> FabricParams:
    """Resolve ``cluster`` (optionally cut down to ``num_nodes`` hosts) for the generators."""
    f, node = cluster.fabric, cluster.node
    if num_nodes is not None and num_nodes < 1:
        raise ValueError(f"num_nodes must be >= 1 (got {num_nodes})")
    allowed = TIERS_ALLOWED.get(f.kind)
    if allowed and f.tiers not in allowed:
        raise ConfigError(f"a {f.kind} fabric is built with {' or '.join(map(str, allowed))} switch tiers",
                          path="fabric.tiers", value=f.tiers, expected=" or ".join(map(str, allowed)))
    with config_errors("node.nics"):
        hosts = Hosts(num_nodes or cluster.num_nodes, node.gpus_per_node, node.nics,
                      node.nic_bandwidth, f.link_latency)
    return FabricParams(
        hosts=hosts, kind=f.kind, tiers=f.tiers, radix=f.switch_radix,
        oversubscription=_oversubscription(cluster), nodes_per_unit=f.nodes_per_unit,
        torus_dims=_torus_dims(cluster, hosts.num_gpus, num_nodes is not None),
        domain_size=node.nvlink.domain_size or node.gpus_per_node, scale_up_kind=node.nvlink.kind,
        # a PCIe "scale-up" moves GPU to GPU through the host's PCIe switch: the GPU's host link rate,
        # not its NVLink figure (which a PCIe card does not use)
        scale_up_bandwidth=node.nvlink.bandwidth or (gpu.host_bandwidth if node.nvlink.kind == "pcie"
                                                     else gpu.nvlink_bandwidth) or PCIE_FALLBACK,
        scale_up_latency=node.nvlink.latency)


def scale_out_graph(p: FabricParams) -> nx.Graph:
    """The network named by ``p.kind``, with the hosts' GPUs (and shared NICs) as endpoints."""
    h, o = p.hosts, p.oversubscription
    with config_errors():
        if p.kind in ("fat_tree", "leaf_spine"):
            G = fat_tree(h, p.tiers, p.radix, o[:max(p.tiers - 1, 0)], p.nodes_per_unit)
            G.graph["fabric"] = p.kind
            return G
        if p.kind == "single_switch":
            return single_switch(h)
        if p.kind == "rail_optimized_fat_tree":
            return rail_optimized_fat_tree(h, p.nodes_per_unit, p.tiers, p.radix, o[:p.tiers - 1])
        if p.kind == "rail_only":
            return rail_only(h, p.nodes_per_unit, p.tiers, p.radix, o[0])
        if p.kind == "torus3d":
            return torus3d(h, p.torus_dims)
        if p.kind == "dragonfly":
            return dragonfly(h, p.nodes_per_unit, p.radix, o[0])
    raise ValueError(f"no generator for fabric kind {p.kind!r}")


def build_cluster_graph(cluster: ClusterConfig, gpu: GPUSpec, num_nodes: int | None = None) -> nx.Graph:
    """Scale-up domains plus the scale-out fabric of ``cluster``; ``num_nodes`` builds a smaller one."""
    p = fabric_params(cluster, gpu, num_nodes)
    with config_errors("node.nvlink"):
        domains = scale_up(p.hosts, p.domain_size, p.scale_up_bandwidth, p.scale_up_latency,
                           p.scale_up_kind)
    G = nx.compose(domains, scale_out_graph(p))
    G.graph["cluster"] = cluster.name
    return G
