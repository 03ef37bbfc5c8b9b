"""What a built fabric offers: per-tier links, capacity, span and oversubscription; bisection.

A tier is the set of links with the same ``tier`` and ``kind`` (scale-up, host, network).
Span: the most GPUs that reach each other over that tier and the network tiers below it (plus
shared-NIC host links) without NVLink: an NVLink domain, the GPUs under one leaf, a pod, all.
Oversubscription: at that tier's switches, downlink capacity / uplink capacity (None at the top).
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass

import networkx as nx

from simulator.topology.graph import HOST, NETWORK, SCALE_UP

_ORDER = {SCALE_UP: 0, HOST: 1, NETWORK: 2}


@dataclass(frozen=True)
class Tier:
    """One tier of links of a fabric, as ``summary`` measures it and ``tier_view`` predicts it."""

    tier: int                       # 0 scale-up / host, 1 leaf, 2 spine, 3 core
    kind: str                       # scale_up | host | network
    name: str                       # nvswitch, nic, leaf, spine, core, torus, router, local, global
    links: int                      # physical cables
    link_capacity: float            # bytes/s per cable per direction
    latency: float                  # s per link
    span: int | None                # GPUs reachable within this tier (see module docstring)
    switches: int                   # switches at this tier
    oversubscription: float | None  # down / up capacity at this tier's switches

    @property
    def total_capacity(self) -> float:
        return self.links * self.link_capacity

    def as_dict(self) -> dict:
        return {**asdict(self), "total_capacity": self.total_capacity}


def gpus(G: nx.Graph) -> list:
    """GPU nodes in global index order."""
    return sorted((v for v, d in G.nodes(data=True) if d["kind"] == "gpu"), key=lambda v: v[1])


def _span(G: nx.Graph, tier: int, kind: str) -> int | None:
    def keep(e: dict) -> bool:
        if kind != NETWORK:
            return e["kind"] == kind
        return e["kind"] == HOST or (e["kind"] == NETWORK and e["tier"] <= tier)

    H = G.edge_subgraph([(u, v) for u, v, e in G.edges(data=True) if keep(e)])
    sizes = [sum(1 for v in c if H.nodes[v]["kind"] == "gpu") for c in nx.connected_components(H)]
    return max(sizes, default=None)


def _switches(G: nx.Graph, tier: int) -> list:
    return [v for v, d in G.nodes(data=True) if d["kind"] == "switch" and d["tier"] == tier]


def _oversubscription(G: nx.Graph, tier: int) -> float | None:
    down = up = 0.0
    for s in _switches(G, tier):
        for _, _, e in G.edges(s, data=True):
            if e["kind"] == NETWORK and e["tier"] == tier:
                down += e["capacity"]
            elif e["kind"] == NETWORK and e["tier"] > tier:
                up += e["capacity"]
    return down / up if up else None


def _name(G: nx.Graph, tier: int, kind: str) -> str:
    if kind == SCALE_UP:
        return G.graph.get("scale_up", SCALE_UP)
    if kind == HOST:
        return "nic"
    return G.graph.get("tier_names", {}).get(tier, f"tier{tier}")


def measured_tiers(G: nx.Graph) -> list[Tier]:
    """Every tier of ``G``, scale-up first, then host links, then the network from the leaf up."""
    groups: dict[tuple[int, str], list[dict]] = defaultdict(list)
    for _, _, e in G.edges(data=True):
        groups[(e["tier"], e["kind"])].append(e)
    out = []
    for tier, kind in sorted(groups, key=lambda k: (k[0], _ORDER[k[1]])):
        edges = groups[(tier, kind)]
        out.append(Tier(
            tier=tier, kind=kind, name=_name(G, tier, kind),
            links=sum(e["links"] for e in edges),
            link_capacity=max(e["capacity"] / e["links"] for e in edges),
            latency=max(e["latency"] for e in edges),
            span=_span(G, tier, kind),
            switches=0 if kind == HOST else len(_switches(G, tier)),
            oversubscription=_oversubscription(G, tier) if kind == NETWORK else None))
    return out


def summary(G: nx.Graph) -> dict:
    """Counts of GPUs, hosts, switches and links, and each tier's links, capacity and ratios."""
    tiers = measured_tiers(G)
    return {
        "fabric": G.graph.get("fabric"),
        "scale_up": G.graph.get("scale_up"),
        "gpus": len(gpus(G)),
        "nodes": len({d["node"] for _, d in G.nodes(data=True) if d["kind"] == "gpu"}),
        "switches": sum(1 for _, d in G.nodes(data=True) if d["kind"] == "switch"),
        "links": sum(t.links for t in tiers),
        "tiers": [t.as_dict() for t in tiers],
    }


def bisection_bandwidth(G: nx.Graph) -> float:
    """Bytes/s per direction across the cheapest cut with the first half of the GPUs (by index)
    on one side and the rest on the other: a max-flow between two super-nodes, one tied to each
    half (exact; fine up to a few thousand GPUs)."""
    order = gpus(G)
    half = len(order) // 2
    if half == 0:
        return 0.0
    H = nx.Graph()
    H.add_edges_from((u, v, {"capacity": e["capacity"]}) for u, v, e in G.edges(data=True))
    H.add_edges_from(("_source", v) for v in order[:half])    # no capacity: unbounded
    H.add_edges_from((v, "_sink") for v in order[half:])
    value, _ = nx.minimum_cut(H, "_source", "_sink")
    return float(value)
