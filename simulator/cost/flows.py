"""Flow-level network model: route flows over a networkx fabric (ECMP) and share links max-min fairly.

This is the exact, small-scale reference: it enumerates every flow and every link. The collective
costs used at scale (cost/contention.py) exploit the fabric's symmetry instead and are tested
against this on small fabrics. Edges carry ``capacity`` in bytes/s per direction; an undirected
edge is two independent directions, as on a full-duplex link.
"""
from __future__ import annotations

from collections import defaultdict

import networkx as nx


def ecmp_fractions(g: nx.Graph, src, dst) -> dict[tuple, float]:
    """Share of a flow from ``src`` to ``dst`` on each directed link, split evenly over all
    shortest paths (per-hop even splitting, as hash-based ECMP does on a regular fabric)."""
    if src == dst:
        return {}
    dist = nx.single_source_shortest_path_length(g, dst)
    share: dict = {src: 1.0}
    out: dict[tuple, float] = defaultdict(float)
    frontier = [src]
    while frontier:
        nxt: dict = {}
        for u in frontier:
            hops = [w for w in g.neighbors(u) if dist.get(w, -1) == dist[u] - 1]
            for w in hops:
                part = share[u] / len(hops)
                out[(u, w)] += part
                if w != dst:
                    nxt[w] = nxt.get(w, 0.0) + part
        share.update(nxt)
        frontier = list(nxt)
    return dict(out)


def max_min_rates(g: nx.Graph, flows: list[tuple]) -> list[float]:
    """Max-min fair rate (bytes/s) of each (src, dst) flow, by progressive filling."""
    fracs = [ecmp_fractions(g, s, d) for s, d in flows]
    load: dict[tuple, dict[int, float]] = defaultdict(dict)
    for i, fr in enumerate(fracs):
        for arc, f in fr.items():
            load[arc][i] = f
    remaining = {arc: g.edges[arc]["capacity"] for arc in load}
    rate = [0.0] * len(flows)
    active = {i for i, fr in enumerate(fracs) if fr}
    while active:
        best, best_arc = float("inf"), None
        for arc, users in load.items():
            w = sum(f for i, f in users.items() if i in active)
            if w > 0 and remaining[arc] / w < best:
                best, best_arc = remaining[arc] / w, arc
        if best_arc is None:
            break
        for i in active:
            rate[i] += best
        for arc, users in load.items():
            remaining[arc] -= best * sum(f for i, f in users.items() if i in active)
        saturated = {arc for arc in load if remaining[arc] <= 1e-9 * g.edges[arc]["capacity"]}
        active -= {i for arc in saturated for i in load[arc]}
    return [r if fracs[i] else float("inf") for i, r in enumerate(rate)]
