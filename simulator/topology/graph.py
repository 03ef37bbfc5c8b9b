"""Conventions shared by the topology generators: node names, attributes, links, and the hosts.

Nodes: GPUs are ``("gpu", i)`` (global index) with ``kind="gpu"``, ``tier=0``, ``node`` (host
index), ``local`` (index inside the host) and ``rail`` (the NIC rail it uses); switches are
``(role, i)`` with ``kind="switch"`` and their ``tier`` (0 scale-up, 1 leaf, 2 spine, 3 core); a NIC
shared by several GPUs is ``("nic", host, j)`` with ``kind="nic"``, ``tier=0``.
Edges: ``capacity`` (bytes/s per direction, summed over parallel cables), ``links`` (the number of
parallel cables), ``latency`` (s), ``tier`` (the tier of the upper end) and ``kind``: ``scale_up``
(NVLink or equivalent), ``host`` (GPU to shared NIC, inside the host) or ``network``.
"""
from __future__ import annotations

from dataclasses import dataclass

import networkx as nx

SCALE_UP, HOST, NETWORK = "scale_up", "host", "network"


def gpu(i: int) -> tuple[str, int]:
    return ("gpu", i)


def add_switch(G: nx.Graph, name: tuple, tier: int, **attrs) -> tuple:
    G.add_node(name, kind="switch", tier=tier, **attrs)
    return name


def add_link(G: nx.Graph, u, v, capacity: float, latency: float, tier: int,
             kind: str = NETWORK, links: int = 1) -> None:
    """Add ``links`` parallel cables of ``capacity`` each; a repeated pair adds to its bundle."""
    if G.has_edge(u, v):
        e = G.edges[u, v]
        e["capacity"] += capacity * links
        e["links"] += links
        return
    G.add_edge(u, v, capacity=capacity * links, links=links, latency=latency, tier=tier, kind=kind)


@dataclass(frozen=True)
class Hosts:
    """The endpoints of a fabric: ``num_nodes`` hosts of ``gpus_per_node`` GPUs and their NICs.

    ``nics_per_node`` (default one per GPU) NICs of ``nic_bandwidth`` bytes/s each; NIC ``j`` of a
    host is on rail ``j``. Fewer NICs than GPUs: consecutive GPUs share one NIC. More: each GPU owns
    ``nics / gpus`` consecutive NICs (a multi-plane fabric).
    """

    num_nodes: int
    gpus_per_node: int = 8
    nics_per_node: int | None = None
    nic_bandwidth: float = 50e9          # 400 Gb/s, ConnectX-7 NDR
    latency: float = 1e-6                # per network link

    def __post_init__(self):
        g, k = self.gpus_per_node, self.nics
        if self.num_nodes < 1 or g < 1 or k < 1:
            raise ValueError(f"hosts need at least one node, GPU and NIC (got {self})")
        if g % k and k % g:
            raise ValueError(f"nics_per_node ({k}) must divide gpus_per_node ({g}) or be a multiple of it")
        if self.nic_bandwidth <= 0:
            raise ValueError(f"nic_bandwidth must be > 0 bytes/s (got {self.nic_bandwidth})")

    @property
    def nics(self) -> int:
        return self.nics_per_node or self.gpus_per_node

    @property
    def num_gpus(self) -> int:
        return self.num_nodes * self.gpus_per_node

    @property
    def shared_nics(self) -> bool:
        return self.nics < self.gpus_per_node

    @property
    def gpus_per_rail(self) -> int:
        """GPUs of one host behind one NIC (1 when each GPU has its own NICs)."""
        return max(1, self.gpus_per_node // self.nics)

    def rail(self, local: int) -> int:
        g, k = self.gpus_per_node, self.nics
        return local // (g // k) if k <= g else local * (k // g)

    def gpu_attrs(self, i: int) -> dict:
        node, local = divmod(i, self.gpus_per_node)
        return {"kind": "gpu", "tier": 0, "node": node, "local": local, "rail": self.rail(local)}

    def port(self, node: int, j: int):
        """The graph node that NIC ``j`` of host ``node`` hangs off: the NIC, or the GPU owning it."""
        g, k = self.gpus_per_node, self.nics
        if k < g:
            return ("nic", node, j)
        return gpu(node * g + j // (k // g))

    def graph(self, with_nics: bool = True) -> nx.Graph:
        """GPU nodes, plus shared NICs wired to their GPUs (``host`` links at the NIC's speed)."""
        G = nx.Graph()
        G.add_nodes_from((gpu(i), self.gpu_attrs(i)) for i in range(self.num_gpus))
        if with_nics and self.shared_nics:
            for n in range(self.num_nodes):
                for j in range(self.nics):
                    G.add_node(("nic", n, j), kind="nic", tier=0, node=n, rail=j)
                for local in range(self.gpus_per_node):
                    # PCIe between GPU and NIC is not the bottleneck (Gen4/5 x16: 32/64 GB/s)
                    add_link(G, gpu(n * self.gpus_per_node + local), ("nic", n, self.rail(local)),
                             self.nic_bandwidth, 0.0, 0, HOST)
        return G


def chunks(total: int, size: int) -> list[tuple[int, int]]:
    """``total`` items cut into consecutive groups of ``size``: [(group size, how many groups)]."""
    full, rest = divmod(total, size)
    return [(s, c) for s, c in ((size, full), (rest, 1)) if s and c]


def spread(total: int, n: int) -> list[tuple[int, int]]:
    """``total`` cables dealt round-robin to ``n`` switches: [(cables per switch, how many switches)]."""
    q, r = divmod(total, n)
    return [(s, c) for s, c in ((q + 1, r), (q, n - r)) if s and c]
