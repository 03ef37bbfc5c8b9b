"""Scale-up domains: GPUs joined by NVLink (or Infinity Fabric, or PCIe) below the network.

A domain is ``domain_size`` consecutive GPUs (default one host; 72 for GB200 NVL72, whose 18
compute trays of 4 GPUs share NVLink switch trays: NVIDIA GB200 NVL72 datasheet). Switched kinds
(``nvswitch``, ``pcie``) link each GPU to one domain switch node at the per-GPU bandwidth, which is
what an NVSwitch system offers every GPU (H100 SXM: 18 NVLink 4 links, 450 GB/s per direction).
Mesh kinds (``nvlink_mesh``, ``infinity_fabric``) link every pair directly with the per-GPU
bandwidth split over the ``domain_size - 1`` peers (MI300X: 7 x 64 GB/s = 448 GB/s per direction).
"""
from __future__ import annotations

from itertools import combinations

import networkx as nx

from simulator.topology.graph import SCALE_UP, Hosts, add_link, add_switch, gpu

MESH_KINDS = ("nvlink_mesh", "infinity_fabric")
SWITCH_ROLE = {"nvswitch": "nvswitch", "pcie": "pcie_switch"}


def scale_up(hosts: Hosts, domain_size: int | None = None, bandwidth: float = 450e9,
             latency: float = 1e-6, kind: str = "nvswitch") -> nx.Graph:
    """GPU nodes in scale-up domains of ``domain_size`` GPUs with ``bandwidth`` bytes/s per GPU."""
    if kind not in MESH_KINDS and kind not in SWITCH_ROLE:
        raise ValueError(f"unknown scale-up kind {kind!r}; expected one of "
                         f"{sorted((*MESH_KINDS, *SWITCH_ROLE))}")
    size = domain_size or hosts.gpus_per_node
    n = hosts.num_gpus
    G = hosts.graph(with_nics=False)
    G.graph["scale_up"] = kind
    if size < 2:
        return G
    for d, start in enumerate(range(0, n, size)):
        members = range(start, min(start + size, n))
        for i in members:
            G.nodes[gpu(i)]["domain"] = d
        if kind in MESH_KINDS:
            for a, b in combinations(members, 2):
                add_link(G, gpu(a), gpu(b), bandwidth / (size - 1), latency, 0, SCALE_UP)
        else:
            sw = add_switch(G, (SWITCH_ROLE[kind], d), 0, domain=d)
            for i in members:
                add_link(G, gpu(i), sw, bandwidth, latency, 0, SCALE_UP)
    return G
