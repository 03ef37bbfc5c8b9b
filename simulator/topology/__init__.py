"""Fabric topologies as networkx graphs and their per-tier view (the `trainsim topology` report,
which reads cluster YAML, is simulator/report/topology_report.py: topology never imports config).

Generators are pure functions (parameters in, ``nx.Graph`` out); conventions in ``graph.py``.
"""
from simulator.topology.analysis import Tier, bisection_bandwidth, summary
from simulator.topology.build import build_cluster_graph, fabric_params
from simulator.topology.clos import fat_tree, leaf_spine, single_switch
from simulator.topology.direct import dragonfly, torus3d
from simulator.topology.graph import Hosts
from simulator.topology.rail import rail_only, rail_optimized_fat_tree
from simulator.topology.scaleup import scale_up
from simulator.topology.tiers import estimated_bisection, tier_view, view_summary

__all__ = ["Hosts", "Tier", "bisection_bandwidth", "build_cluster_graph", "dragonfly",
           "estimated_bisection", "fabric_params", "fat_tree", "leaf_spine", "rail_only",
           "rail_optimized_fat_tree", "scale_up", "single_switch", "summary", "tier_view",
           "torus3d", "view_summary"]
