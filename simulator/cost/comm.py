"""Collective communication times on a two-tier (scale-up domain, scale-out network) fabric.

An alpha-beta model per tier: a ring moves (n-1)/n of the buffer per step over the slowest link of
its tier, and pays one hop latency per step; a collective spanning several NVLink domains runs
hierarchically (inside the domain first, then across domains on each GPU's own NIC rail), as NCCL
does. Bus-bandwidth factors 2(n-1)/n (all-reduce) and (n-1)/n (reduce-scatter, all-gather,
all-to-all) fall out of the ring algorithm (nccl-tests PERFORMANCE.md).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from simulator.config.cluster import ClusterConfig
from simulator.config.gpu import GPUSpec
from simulator.cost import contention
from simulator.cost.efficiency import Efficiency
from simulator.topology.placement import GroupShape, group_shape


@dataclass(frozen=True)
class Tiers:
    """Per-GPU bandwidths and hop latencies of the scale-up domain and the scale-out fabric."""

    domain_size: int          # GPUs per NVLink domain
    nvlink_bw: float          # bytes/s per GPU per direction inside a domain
    network_bw: float         # bytes/s per GPU per direction across domains (NIC share)
    nvlink_hop: float         # s per ring step inside a domain
    network_hop: float        # s per ring step across domains
    base: float               # s per collective launch
    scaleout: tuple = ()      # FabricTier levels above the NICs (cost/contention.py)
    job_gpus: int = 0         # GPUs of the job: every group of a kind runs at once over them


def tiers_of(cluster: ClusterConfig, gpu: GPUSpec, eff: Efficiency, job_gpus: int) -> Tiers:
    from simulator.topology import fabric_params

    node = cluster.node
    resolved = fabric_params(cluster, gpu)   # NVLink bandwidth and domain, as the generators see them
    nvlink, domain = resolved.scale_up_bandwidth, resolved.domain_size
    nics = node.nics or node.gpus_per_node
    nic_per_gpu = nics * node.nic_bandwidth / node.gpus_per_node * eff.network
    fabric = cluster.fabric
    view = _tier_view(cluster, gpu)
    scaleout = contention.from_tier_view(view, fabric.kind, node.gpus_per_node,
                                         cluster.num_nodes * node.gpus_per_node, eff.network)
    return Tiers(domain, nvlink * eff.network, nic_per_gpu,
                 max(eff.hop_latency_nvlink, node.nvlink.latency),
                 max(eff.hop_latency_network, fabric.link_latency),
                 eff.collective_base_latency, scaleout, job_gpus)


def _tier_view(cluster: ClusterConfig, gpu: GPUSpec) -> tuple:
    from simulator.topology import tier_view

    return tuple(tier_view(cluster, gpu))


@dataclass(frozen=True)
class Group(GroupShape):
    """A communicator (topology/placement.py) and the per-tier costs of its collectives.

    ``Group.of(kind, layout)`` builds the group of a kind under Megatron's rank order.
    """

    @classmethod
    def of(cls, kind: str, layout) -> "Group":
        shape = group_shape(kind, layout.tp, layout.cp, layout.dp, layout.pp, layout.ep)
        return cls(shape.size, shape.stride)

    def per_domain(self, t: Tiers) -> int:
        """Members of the group that share one NVLink domain."""
        return self.members_within(t.domain_size)

    def domains(self, t: Tiers) -> int:
        return math.ceil(self.size / self.per_domain(t))

    def network_bw(self, t: Tiers) -> float:
        """Bytes/s of each flow of this group's cross-domain ring, with every group of its kind
        active at once, shared max-min over the fabric's tiers (cost/contention.py)."""
        k = self.per_domain(t)
        jobs = t.job_gpus or self.size * self.stride
        return contention.ring_bandwidth(self.domains(t), self.stride * k, t.scaleout, jobs, t.network_bw)


def _ring(n: int, nbytes: float, bw: float, hop: float, factor: float) -> float:
    if n <= 1 or nbytes <= 0:
        return 0.0
    return factor * (n - 1) / n * nbytes / bw + factor * (n - 1) * hop


def all_reduce(g: Group, nbytes: float, t: Tiers) -> float:
    if g.size <= 1 or nbytes <= 0:
        return 0.0
    k, n_dom = g.per_domain(t), g.domains(t)
    if n_dom == 1:
        return t.base + _ring(k, nbytes, t.nvlink_bw, t.nvlink_hop, 2.0)
    intra = 2 * _ring(k, nbytes, t.nvlink_bw, t.nvlink_hop, 1.0)     # reduce-scatter + all-gather
    piece = nbytes / k
    bw = g.network_bw(t)
    steps = min(2 * (n_dom - 1), 2 * math.ceil(math.log2(n_dom)) + 2)  # ring, or tree latency
    inter = 2.0 * (n_dom - 1) / n_dom * piece / bw + steps * t.network_hop
    return t.base + intra + inter


def _gather_like(g: Group, nbytes: float, t: Tiers) -> float:
    """Reduce-scatter of an input of ``nbytes`` (or all-gather of an output of ``nbytes``).

    NCCL runs these as one flat ring (no tree): n-1 steps, and once the ring leaves the NVLink
    domain every step waits for its network hop, so latency grows with n, not with the node count.
    The bytes each NIC carries are those of a per-rail ring: (n_dom-1)/n_dom of nbytes/k.
    """
    if g.size <= 1 or nbytes <= 0:
        return 0.0
    k, n_dom = g.per_domain(t), g.domains(t)
    if n_dom == 1:
        return t.base + _ring(k, nbytes, t.nvlink_bw, t.nvlink_hop, 1.0)
    intra = (k - 1) / k * nbytes / t.nvlink_bw if k > 1 else 0.0
    inter = (n_dom - 1) / n_dom * (nbytes / k) / g.network_bw(t)
    return t.base + intra + inter + (g.size - 1) * t.network_hop


def reduce_scatter(g: Group, nbytes: float, t: Tiers) -> float:
    return _gather_like(g, nbytes, t)


def all_gather(g: Group, nbytes: float, t: Tiers) -> float:
    return _gather_like(g, nbytes, t)


def broadcast(g: Group, nbytes: float, t: Tiers) -> float:
    """One rank sends ``nbytes`` to all: NCCL pipelines it in chunks along a ring, so every link
    carries the buffer once (S / B) and the last rank waits n-1 hops for the first chunk."""
    if g.size <= 1 or nbytes <= 0:
        return 0.0
    if g.domains(t) == 1:
        return t.base + nbytes / t.nvlink_bw + (g.size - 1) * t.nvlink_hop
    return t.base + nbytes / min(t.nvlink_bw, g.network_bw(t)) + (g.size - 1) * t.network_hop


def all_to_all(g: Group, nbytes: float, t: Tiers) -> float:
    """Each rank sends ``nbytes`` in total, split evenly over the group's ranks."""
    if g.size <= 1 or nbytes <= 0:
        return 0.0
    k = g.per_domain(t)
    n = g.size
    intra = nbytes * (k - 1) / n / t.nvlink_bw
    inter = contention.all_to_all_time(n, g.stride, nbytes, t.scaleout, t.network_bw, t.domain_size)
    hop = t.network_hop if n > k else t.nvlink_hop
    return t.base + max(intra, inter) + (n - 1) * hop


def send_recv(stride: int, nbytes: float, t: Tiers, peers: int = 2) -> float:
    """Point-to-point transfer between ranks ``stride`` apart (pipeline neighbours); every chain of
    ``peers`` ranks of this kind sends at once."""
    if nbytes <= 0:
        return 0.0
    if Group(peers, stride).domains(t) == 1:   # the whole chain sits in one NVLink domain
        return nbytes / t.nvlink_bw + t.nvlink_hop
    jobs = t.job_gpus or peers * stride
    return nbytes / contention.ring_bandwidth(peers, stride, t.scaleout, jobs, t.network_bw) + t.network_hop
