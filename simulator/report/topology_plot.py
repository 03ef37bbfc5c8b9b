"""Drawing of a small fabric graph: one row per tier, links coloured by kind (Agg, no display)."""
from __future__ import annotations

from pathlib import Path

import networkx as nx
from matplotlib.collections import LineCollection

from simulator.report import style
from simulator.units import fmt_si


MAX_NODES = 3000           # beyond this a drawing is a blur: build a smaller version (num_nodes)
# row of each node: scale-up switches under the GPUs, shared NICs just above them
_ROW = {"nvswitch": -1.0, "pcie_switch": -1.0, "gpu": 0.0, "nic": 0.5}
_EDGE_COLOURS = {"scale_up": style.GREEN, "host": style.GREY, "network": style.BLUE}
_EDGE_LABELS = {"scale_up": "scale-up (NVLink / PCIe)", "host": "host (GPU to NIC)", "network": "network"}
_NODE_COLOURS = {"gpu": style.ORANGE, "nic": style.GREY, "switch": style.BLUE}
_NODE_MARKERS = {"gpu": "o", "nic": "s", "switch": "D"}
_NAMES = {"gpu": "GPUs", "nic": "NICs", "nvswitch": "NVSwitch", "pcie_switch": "PCIe switch"}


def row_names(G: nx.Graph) -> dict[float, str]:
    """Row -> what sits there, by the nodes' own names (e.g. 'leaf switches (tier 1)')."""
    kinds: dict[float, set] = {}
    for v, d in G.nodes(data=True):
        kinds.setdefault(_row(v, d), set()).add(str(v[0]))
    out = {}
    for y, names in kinds.items():
        words = " / ".join(_NAMES.get(n, n.replace("_", " ") + " switches") for n in sorted(names))
        out[y] = words if y in (-1.0, 0.0, 0.5) else f"{words} (tier {y:g})"
    return out


def link_bandwidths(G: nx.Graph) -> list[tuple[float, float, str, str]]:
    """One entry per pair of rows the links join: (lower row, upper row, kind, 'N links x B/s')."""
    groups: dict[tuple, list] = {}
    for u, v, e in G.edges(data=True):
        a, b = sorted((_row(u, G.nodes[u]), _row(v, G.nodes[v])))
        groups.setdefault((a, b, e["kind"]), []).append(e["capacity"])
    out = []
    for (a, b, kind), caps in sorted(groups.items()):
        lo, hi = min(caps), max(caps)
        per = fmt_si(lo, "B/s") if lo == hi else f"{fmt_si(lo, 'B/s')}-{fmt_si(hi, 'B/s')}"
        out.append((a, b, kind, f"{len(caps):,} links x {per}"))
    return out


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
    return style.save(figure_of(G, title), path)


def figure_of(G: nx.Graph, title: str | None = None):
    """The drawing as a Figure: rows named by what sits there, each row pair's links labelled with
    their count and bandwidth per link (bytes per second)."""
    pos = layout(G)
    fig = style.figure(13, 6.5)
    ax = fig.add_subplot()
    for kind, colour in _EDGE_COLOURS.items():
        segs = [(pos[u], pos[v]) for u, v, e in G.edges(data=True) if e["kind"] == kind]
        if segs:
            ax.add_collection(LineCollection(segs, colors=colour, linewidths=0.6, alpha=0.6,
                                             label=_EDGE_LABELS[kind]))
    for kind, colour in _NODE_COLOURS.items():
        xy = [pos[v] for v, d in G.nodes(data=True) if d["kind"] == kind]
        if xy:
            ax.scatter(*zip(*xy), s=18, c=colour, marker=_NODE_MARKERS[kind], label=kind.upper() if kind != "switch"
                       else "switch", zorder=3)
    names = row_names(G)
    ys = sorted(names)
    ax.set_yticks(ys, [names[y] for y in ys])
    ax.set_xticks([])
    ax.set_xlim(-0.02, 1.32)
    for a, b, kind, text in link_bandwidths(G):
        ax.text(1.02, (a + b) / 2, text, va="center", fontsize=10, color=_EDGE_COLOURS.get(kind, style.BLACK))
    ax.spines["bottom"].set_visible(False)
    ax.set_title(title or G.graph.get("cluster") or G.graph.get("fabric") or "fabric")
    fig.legend(loc="outside lower center", ncol=4, fontsize=10)
    return fig


def draw_cluster(cluster_path, path, num_nodes: int | None = None) -> int:
    """Draw a cluster YAML's fabric; a big one is drawn at a small size (two scalable units, at
    most 32 nodes). Returns the number of nodes drawn."""
    from simulator.topology import build_cluster_graph
    from simulator.report.topology_report import load_cluster

    from simulator.errors import ConfigError

    cluster, gpu = load_cluster(cluster_path)
    n = num_nodes or min(cluster.num_nodes, max(2, min(32, 2 * cluster.fabric.nodes_per_unit)))
    G = build_cluster_graph(cluster, gpu, n)
    if G.number_of_nodes() > MAX_NODES:   # a drawing of more is a blot; checked before matplotlib runs
        fit = max(1, int(n * MAX_NODES / G.number_of_nodes()))
        raise ConfigError(f"{n:,} nodes make a graph of {G.number_of_nodes():,} vertices (GPUs, NICs, switches), "
                          f"too many to draw (at most {MAX_NODES:,})", source="--nodes (with --draw)", value=n,
                          expected=f"--nodes {fit:,} or fewer for the drawing (the text report takes any count)")
    draw(G, path, title=f"How is {cluster.name} wired? ({n} nodes drawn; bandwidth per link)")
    return n
