"""Collective communication times on a two-tier (scale-up domain, scale-out network) fabric.

An alpha-beta model per tier: a ring moves (n-1)/n of the buffer per step over the slowest link of
its tier, and pays one hop latency per step. Bus-bandwidth factors 2(n-1)/n (all-reduce) and (n-1)/n
(reduce-scatter, all-gather, all-to-all) fall out of the ring algorithm (nccl-tests PERFORMANCE.md).

A collective spanning several NVLink domains is one NCCL ring (or tree) through every member, cut
into chunks over several channels: while one chunk crosses the network another moves over NVLink,
so the tiers work at once and the slower one sets the time (max, not sum). Each GPU's NIC carries the
channel that leaves the domain at that GPU, i.e. (S/k) of the buffer for k members per domain: the
bus bandwidth of a large multi-node all-reduce approaches the node's NIC aggregate (nccl-tests on
DGX H100 with 8 x 400G NDR: ~370-385 GB/s at 16 nodes).

Algorithms, as NCCL's tuner picks them: ring for bandwidth; a double binary tree across domains when
its log-depth latency wins (small buffers, many nodes); NVLink SHARP (NVLS) inside an NVSwitch domain
that has it (NVSwitch 3 and later: H100 / H200 / Blackwell), where the switch reduces and multicasts so
each GPU moves the buffer once instead of 2(k-1)/k times, at the measured NVLS rate (8 x H100: ~480
GB/s bus bandwidth, reference.md). Scale-up efficiency (Efficiency.nvlink) and scale-out efficiency
(Efficiency.network) are separate. On a mesh scale-up (nvlink_mesh, infinity_fabric: every pair of
GPUs joined by its own link) a group of k members in a domain of D GPUs has k-1 of each GPU's D-1
links: a TP2 pair on MI300X shares one 64 GB/s link.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from simulator.config.cluster import ClusterConfig
from simulator.config.gpu import GPUSpec
from simulator.cost import contention
from simulator.cost.efficiency import Efficiency
from simulator.memo import by_identity
from simulator.topology.placement import GroupShape, group_shape


@dataclass(frozen=True)
class Tiers:
    """Per-GPU bandwidths and hop latencies of the scale-up domain and the scale-out fabric."""

    domain_size: int          # GPUs per NVLink domain
    nvlink_bw: float          # bytes/s per GPU per direction inside a domain (all its links)
    network_bw: float         # bytes/s per GPU per direction across domains (NIC share)
    nvlink_hop: float         # s per ring step inside a domain
    network_hop: float        # s per ring step across domains
    base: float               # s per collective launch
    scaleout: tuple = ()      # FabricTier levels above the NICs (cost/contention.py)
    job_gpus: int = 0         # GPUs of the job: every group of a kind runs at once over them
    mesh_links: int = 0       # mesh scale-up: links per GPU (domain_size - 1); 0 = a switch
    nvls_bw: float = 0.0      # NVLS all-reduce rate, bytes/s per GPU per direction (0: no NVLS)

    def scale_up_bw(self, k: int) -> float:
        """Bytes/s per GPU per direction for a group of ``k`` members inside one domain."""
        if self.mesh_links and k > 1:
            return self.nvlink_bw * min(k - 1, self.mesh_links) / self.mesh_links
        return self.nvlink_bw


@by_identity()   # frozen cluster, GPU and efficiencies: the same tiers for every layout
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
    from simulator.topology.scaleup import MESH_KINDS

    kind = resolved.scale_up_kind
    mesh = domain - 1 if kind in MESH_KINDS and domain > 1 else 0
    return Tiers(domain, nvlink * eff.nvlink, nic_per_gpu,
                 max(eff.hop_latency_nvlink, node.nvlink.latency),
                 max(eff.hop_latency_network, fabric.link_latency),
                 eff.collective_base_latency, scaleout, job_gpus, mesh,
                 nvlink * eff.nvls if has_nvls(cluster, nvlink) else 0.0)


# NVLink SHARP needs NVSwitch 3 (NVLink 4, 450 GB/s per GPU per direction) or later
NVLS_MIN_BANDWIDTH = 450e9


def has_nvls(cluster: ClusterConfig, nvlink_bw: float) -> bool:
    """Whether the scale-up domain reduces in the switch (cluster node.nvlink.nvls, else NVSwitch 3+)."""
    nv = cluster.node.nvlink
    choice = getattr(nv, "nvls", None)
    if choice is not None:
        return bool(choice) and nv.kind == "nvswitch"
    return nv.kind == "nvswitch" and nvlink_bw >= NVLS_MIN_BANDWIDTH


def _tier_view(cluster: ClusterConfig, gpu: GPUSpec) -> tuple:
    from simulator.topology.tiers import tier_tuple

    return tier_tuple(cluster, gpu)


@dataclass(frozen=True)
class Group(GroupShape):
    """A communicator (topology/placement.py) and the per-tier costs of its collectives.

    ``Group.of(kind, layout)`` builds the group of a kind under the layout's rank order.
    """

    @classmethod
    def of(cls, kind: str, layout) -> "Group":
        shape = group_shape(kind, layout.tp, layout.cp, layout.dp, layout.pp, layout.ep,
                            getattr(layout, "rank_order", "tp-cp-dp-pp"))
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


def _intra_all_reduce(k: int, nbytes: float, t: Tiers) -> float:
    """All-reduce of ``nbytes`` among ``k`` GPUs of one domain: ring, or NVLS where the switch has it
    (NCCL's tuner takes the faster)."""
    ring = _ring(k, nbytes, t.scale_up_bw(k), t.nvlink_hop, 2.0)
    if t.nvls_bw > 0 and k > 2:
        return min(ring, nbytes / t.nvls_bw + 2 * t.nvlink_hop)
    return ring


def all_reduce(g: Group, nbytes: float, t: Tiers) -> float:
    if g.size <= 1 or nbytes <= 0:
        return 0.0
    k, n_dom = g.per_domain(t), g.domains(t)
    if n_dom == 1:
        return t.base + _intra_all_reduce(k, nbytes, t)
    # bandwidth: NVLink and network phases pipelined over chunks and channels (the slower one sets
    # the time); NVLS inside the domain where the switch has it (NCCL's NVLS-tree)
    if t.nvls_bw > 0 and k > 2:
        intra = min(2 * (k - 1) / k * nbytes / t.scale_up_bw(k), nbytes / t.nvls_bw)
    else:
        intra = 2 * (k - 1) / k * nbytes / t.scale_up_bw(k) if k > 1 else 0.0
    inter = 2.0 * (n_dom - 1) / n_dom * (nbytes / k) / g.network_bw(t)
    # latency (NCCL's tuning model, src/graph/tuning.cc): a ring's 2(n-1) steps, 2(n_dom-1) of them
    # across the network and the rest over NVLink; a double binary tree's ~2 log2(n_dom) network
    # steps plus the chain inside each domain there and back; NCCL's tuner takes the faster
    ring = 2 * (n_dom - 1) * t.network_hop + 2 * (g.size - n_dom) * t.nvlink_hop
    tree = (2 * math.ceil(math.log2(n_dom)) + 2) * t.network_hop + 2 * (k - 1) * t.nvlink_hop
    return t.base + max(intra, inter) + min(ring, tree)


# NCCL's PAT algorithm (Parallel Aggregated Trees, NCCL 2.23 and later) for all-gather and
# reduce-scatter with one GPU per node, as its tuning model costs it (NVIDIA/nccl src/graph/tuning.cc
# @ 5067397c): base latency 8.0 us, floor(log2 nodes) steps of the network hop divided by 3.5, a
# term of 2.8 us per rank (linear in the ranks), and 0.75 of the ring's bus bandwidth. The tuner takes
# it where its predicted time beats the ring's: small buffers over many nodes.
PAT_BASE_S = 8.0e-6
PAT_PER_RANK_S = 2.8e-6
PAT_HOP_DIVISOR = 3.5
PAT_BANDWIDTH = 0.75


def _pat(n: int, inter: float, t: Tiers) -> float:
    """PAT time of a gather over ``n`` ranks, one per node, whose ring moves its bytes in ``inter`` s."""
    return PAT_BASE_S + int(math.log2(n)) * t.network_hop / PAT_HOP_DIVISOR + n * PAT_PER_RANK_S + inter / PAT_BANDWIDTH


def _gather_like(g: Group, nbytes: float, t: Tiers) -> float:
    """Reduce-scatter of an input of ``nbytes`` (or all-gather of an output of ``nbytes``).

    NCCL runs these as one flat ring (no tree) of n-1 steps. A chunk is forwarded as soon as it
    arrives, so the latency is the sum of the hops it crosses: n_dom-1 network hops and the other
    n-n_dom over NVLink (NCCL's own tuning model, src/graph/tuning.cc: nInterSteps = nNodes-1 of
    nsteps = nRanks-1). The bytes each NIC carries are those of a per-rail ring: (n_dom-1)/n_dom
    of nbytes/k; the NVLink and network phases are pipelined (max). With one member per domain
    NCCL's tuner may take PAT instead (above), where it is faster.
    """
    if g.size <= 1 or nbytes <= 0:
        return 0.0
    k, n_dom = g.per_domain(t), g.domains(t)
    if n_dom == 1:
        return t.base + _ring(k, nbytes, t.scale_up_bw(k), t.nvlink_hop, 1.0)
    intra = (k - 1) / k * nbytes / t.scale_up_bw(k) if k > 1 else 0.0
    inter = (n_dom - 1) / n_dom * (nbytes / k) / g.network_bw(t)
    ring = t.base + max(intra, inter) + (n_dom - 1) * t.network_hop + (g.size - n_dom) * t.nvlink_hop
    return min(ring, _pat(g.size, inter, t)) if k == 1 else ring


def reduce_scatter(g: Group, nbytes: float, t: Tiers) -> float:
    return _gather_like(g, nbytes, t)


def all_gather(g: Group, nbytes: float, t: Tiers) -> float:
    return _gather_like(g, nbytes, t)


def broadcast(g: Group, nbytes: float, t: Tiers) -> float:
    """One rank sends ``nbytes`` to all: NCCL pipelines it in chunks along a ring, so every link
    carries the buffer once (S / B) and the last rank waits n-1 hops for the first chunk."""
    if g.size <= 1 or nbytes <= 0:
        return 0.0
    k = g.per_domain(t)
    ring_bw = t.scale_up_bw(2) if t.mesh_links else t.nvlink_bw   # a ring uses one link per neighbour
    if g.domains(t) == 1:
        return t.base + nbytes / ring_bw + (g.size - 1) * t.nvlink_hop
    return t.base + nbytes / min(ring_bw if k > 1 else math.inf, g.network_bw(t)) + (g.size - 1) * t.network_hop


def all_to_all(g: Group, nbytes: float, t: Tiers) -> float:
    """Each rank sends ``nbytes`` in total, split evenly over the group's ranks."""
    if g.size <= 1 or nbytes <= 0:
        return 0.0
    k = g.per_domain(t)
    n = g.size
    intra = nbytes * (k - 1) / n / t.scale_up_bw(k)
    inter = contention.all_to_all_time(n, g.stride, nbytes, t.scaleout, t.network_bw, t.domain_size)
    hop = t.network_hop if n > k else t.nvlink_hop
    return t.base + max(intra, inter) + (n - 1) * hop


def send_recv(stride: int, nbytes: float, t: Tiers, peers: int = 2) -> float:
    """Point-to-point transfer between ranks ``stride`` apart (pipeline neighbours); every chain of
    ``peers`` ranks of this kind sends at once."""
    if nbytes <= 0:
        return 0.0
    if Group(peers, stride).domains(t) == 1:   # the whole chain sits in one NVLink domain
        return nbytes / t.scale_up_bw(2) + t.nvlink_hop     # one link on a mesh
    jobs = t.job_gpus or peers * stride
    return nbytes / contention.ring_bandwidth(peers, stride, t.scaleout, jobs, t.network_bw) + t.network_hop
