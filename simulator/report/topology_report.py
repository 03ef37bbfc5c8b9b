"""``trainsim topology CLUSTER``: what a cluster YAML's fabric offers, as one JSON-ready dict."""
from __future__ import annotations

from pathlib import Path

from simulator.config.cluster import ClusterConfig
from simulator.config.loader import read_yaml, validate
from simulator.config.scenario import resolve_gpu
from simulator.topology.analysis import bisection_bandwidth, summary
from simulator.topology.build import build_cluster_graph
from simulator.topology.tiers import estimated_bisection, view_summary

MAX_GRAPH_GPUS = 4096      # beyond this, counts come from tier_view and bisection from the tiers


def load_cluster(path: str | Path):
    """The validated cluster config of ``path`` and its GPU (ConfigError when malformed)."""
    path = Path(path)
    source = str(path)
    cluster = validate(ClusterConfig, read_yaml(path), source, [])
    return cluster, resolve_gpu(cluster, lambda loc: source)


def topology_report(cluster_path: str | Path, num_nodes: int | None = None,
                    max_graph_gpus: int = MAX_GRAPH_GPUS) -> dict:
    """Summary (GPUs, switches, links), bisection bandwidth and per-tier table of a cluster YAML.

    Up to ``max_graph_gpus`` GPUs the graph is built and measured (bisection by max-flow);
    larger fabrics are described from the tier counts alone. ``num_nodes``: a smaller build.
    """
    cluster, gpu = load_cluster(cluster_path)
    n = (num_nodes or cluster.num_nodes) * cluster.node.gpus_per_node
    if n <= max_graph_gpus:
        G = build_cluster_graph(cluster, gpu, num_nodes)
        out, bisection, method = summary(G), bisection_bandwidth(G), "min_cut"
    else:
        out = view_summary(cluster, gpu, num_nodes)
        bisection, method = estimated_bisection(cluster, gpu, num_nodes), "tiers"
    return {
        "cluster": cluster.name,
        "source": str(cluster_path),
        "gpu": gpu.name,
        **out,
        "bisection_bandwidth": bisection,
        "bisection_per_gpu": bisection / (n // 2) if bisection is not None and n > 1 else None,
        "bisection_method": method,
    }
