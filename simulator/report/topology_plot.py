"""Drawing of a small fabric graph: one row per tier, links coloured by kind (Agg, no display)."""
from __future__ import annotations

from pathlib import Path

import networkx as nx
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure

from simulator.outputs import save_figure

MAX_NODES = 3000           # beyond this a drawing is a blur: build a smaller version (num_nodes)
# row of each node: scale-up switches under the GPUs, shared NICs just above them
_ROW = {"nvswitch": -1.0, "pcie_switch": -1.0, "gpu": 0.0, "nic": 0.5}
_EDGE_COLOURS = {"scale_up": "tab:green", "host": "tab:gray", "network": "tab:blue"}
_NODE_COLOURS = {"gpu": "tab:orange", "nic": "tab:gray", "switch": "tab:blue"}


def _row(name: tuple, data: dict) -> float:
    return _ROW.get(name[0], float(data["tier"]))


def layout(G: nx.Graph) -> dict:
    """Layered positions: y by tier, nodes of a row spread evenly over the same width, in order."""
    rows: dict[float, list] = {}
    for v, d in G.nodes(data=True):
        rows.setdefault(_row(v, d), []).append(v)
    pos = {}
    for y, members in rows.items():
        members.sort(key=lambda v: tuple(str(x).zfill(8) for x in v))
        step = 1.0 / len(members)
        pos.update({v: ((i + 0.5) * step, y) for i, v in enumerate(members)})
    return pos


def draw(G: nx.Graph, path: str | Path, title: str | None = None) -> Path:
    """Write a PNG (or any format matplotlib knows from the suffix) of ``G`` to ``path``."""
    if G.number_of_nodes() > MAX_NODES:
        raise ValueError(f"{G.number_of_nodes()} nodes are too many to draw (at most {MAX_NODES}); "
                         "build a smaller version with num_nodes")
    pos = layout(G)
    fig = Figure(figsize=(12, 6), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for kind, colour in _EDGE_COLOURS.items():
        segs = [(pos[u], pos[v]) for u, v, e in G.edges(data=True) if e["kind"] == kind]
        if segs:
            ax.add_collection(LineCollection(segs, colors=colour, linewidths=0.4, alpha=0.6, label=kind))
    for kind, colour in _NODE_COLOURS.items():
        xy = [pos[v] for v, d in G.nodes(data=True) if d["kind"] == kind]
        if xy:
            ax.scatter(*zip(*xy), s=12, c=colour, label=kind, zorder=3)
    ax.set_yticks(sorted({y for _, y in pos.values()}))
    ax.set_xticks([])
    ax.set_ylabel("tier")
    ax.set_title(title or G.graph.get("cluster") or G.graph.get("fabric") or "fabric")
    ax.legend(loc="upper right", fontsize=8)
    return save_figure(fig, path)


def draw_cluster(cluster_path, path, num_nodes: int | None = None) -> int:
    """Draw a cluster YAML's fabric; a big one is drawn at a small size (two scalable units, at
    most 32 nodes). Returns the number of nodes drawn."""
    from simulator.topology import build_cluster_graph
    from simulator.topology.report import load_cluster

    cluster, gpu = load_cluster(cluster_path)
    n = num_nodes or min(cluster.num_nodes, max(2, min(32, 2 * cluster.fabric.nodes_per_unit)))
    draw(build_cluster_graph(cluster, gpu, n), path, title=f"{cluster.name} ({n} nodes)")
    return n
