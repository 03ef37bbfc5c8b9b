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

Algorithms and protocols, as NCCL's tuner picks them (the least predicted time for the call): ring
for bandwidth; a double binary tree across domains when its log-depth latency wins (small buffers,
many nodes); the LL, LL128 or Simple protocol, LL's sub-microsecond steps at half the bandwidth for
small buffers, Simple's full bandwidth for large ones (``Protocol``); NVLink SHARP (NVLS) inside an NVSwitch domain
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
    # NCCL's protocols (LL, LL128, Simple) with their latencies and bandwidth factors (tiers_of);
    # empty: one Simple protocol whose latencies are the fields above (hand-computed tests)
    protocols: tuple = ()
    nvls_latency: float = 0.0  # s per NVLS all-reduce inside a domain (0: base + 2 NVLink hops)

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
    nvl_hop = max(eff.hop_latency_nvlink, node.nvlink.latency)
    net_hop = max(eff.hop_latency_network, fabric.link_latency)
    return Tiers(domain, nvlink * eff.nvlink, nic_per_gpu, nvl_hop, net_hop,
                 eff.collective_base_latency, scaleout, job_gpus, mesh,
                 nvlink * eff.nvls if has_nvls(cluster, nvlink) else 0.0,
                 nccl_protocols(gpu.compute_capability, eff, nvl_hop, net_hop), NVLS_LATENCY_S)


# NCCL's three protocols as its tuning model costs them (NVIDIA/nccl src/graph/tuning.cc @ 5067397c,
# ncclTunerConstantsDefaults and ncclTopoTuneModel). Per protocol, in us: base latency (Ring, Tree);
# per step over NVLink (Ring, Tree) and across the network (Ring, Tree; a ring with one GPU per node
# pays the Tree figure, "latencies are fully exposed"); and the floor a multi-node ring's NVLink
# steps pay for posting to the network (getNetOverhead: 1 us on x86 Intel and Arm hosts, 2 us on AMD,
# tripled for Simple). Bandwidth: LL moves 8-byte lines carrying 4 bytes of data (0.5 of the bus
# bandwidth, capped at llMaxBws), LL128 120 of every 128 bytes (0.92); the tree all-reduce reaches
# 0.92 of the ring's bus bandwidth (Simple), 0.92 / 3.8 under LL and 0.92 x 120/128 under LL128.
# The tuner takes the (algorithm, protocol) of least predicted time for each call, so a small
# collective runs LL at ~0.6 us per NVLink step and a large one Simple at full bandwidth.
# Simple's base and its steps are Efficiency's (collective_base_latency 8.4 us and hop_latency_network
# 14 us, NCCL's own figures; hop_latency_nvlink 1 us, below NCCL's 3.4 us Simple NVLink step and with
# no network-post floor): with the tuner's 3.4 us (and its 3 us floor on a multi-node ring's NVLink
# steps) a 1 GB all-reduce over 16 DGX H100 nodes would spend 1.2 ms of its ~5 ms in latency and reach
# ~330 GB/s of bus bandwidth, below the 370-385 GB/s nccl-tests measures there
# (tests/test_collectives.py): the tuner's figures rank algorithms; the measurement bounds the
# large-message cost.
@dataclass(frozen=True)
class Protocol:
    name: str
    base: float               # s per collective (ring)
    tree_base: float          # s per collective (tree all-reduce)
    nvlink: float             # s per ring step over NVLink
    nvlink_tree: float        # s per tree step over NVLink
    network: float            # s per ring step across the network
    network_tree: float       # s per tree step across the network (and per ring step at one GPU per node)
    net_floor: float          # s: the least a multi-node ring's NVLink step costs (network post overhead)
    ring_bw: float            # fraction of the bus bandwidth a ring reaches
    tree_bw: float            # fraction of the ring's bus bandwidth a tree all-reduce reaches
    cap_domain: float = math.inf   # bus bandwidth cap inside one domain, bytes/s (LL: llMaxBws)
    cap_two: float = math.inf      # ... over two domains
    cap_many: float = math.inf     # ... over more

    def cap(self, domains: int) -> float:
        """Bus bandwidth cap (bytes/s) of a collective over ``domains`` domains."""
        return self.cap_domain if domains <= 1 else self.cap_two if domains == 2 else self.cap_many

    def ring_latency(self, n: int, n_dom: int, k: int, factor: int = 1) -> float:
        """Base latency plus ``factor`` passes over a ring of ``n`` ranks in ``n_dom`` domains of
        ``k``: n_dom-1 network steps (the tree's figure with one GPU per node), the other n-n_dom
        over NVLink (across domains at least the network post overhead)."""
        if n_dom == 1:
            return self.base + factor * (n - 1) * self.nvlink
        net = self.network_tree if k == 1 else self.network
        return self.base + factor * ((n_dom - 1) * net + (n - n_dom) * max(self.nvlink, self.net_floor))

    def moving(self, phases: float, bus: float, domains: int, fraction: float | None = None) -> float:
        """Seconds to move the data: the pipelined phases' time (at full bandwidth) over this
        protocol's ``fraction`` of it (default: the ring's), or ``bus`` bytes at its bandwidth cap."""
        return max(phases / (self.ring_bw if fraction is None else fraction), bus / self.cap(domains))


# llMaxBws (GB/s of bus bandwidth): one node by GPU generation (Volta, Ampere, Hopper, Blackwell);
# several nodes by host CPU (row of Intel / Arm hosts: 39.0 over two nodes, 20.4 over more)
LL_MAX_BW_ONE_NODE = ((10.0, 282e9), (9.0, 141e9), (8.0, 87.7e9), (0.0, 39e9))
LL_MAX_BW_TWO_NODES = 39e9
LL_MAX_BW_MANY_NODES = 20.4e9
# hwLat[NVLINK][NVLS][Simple]: an NVLS all-reduce inside a node (its base latency is 0)
NVLS_LATENCY_S = 25e-6


def nccl_protocols(compute_capability: float | None, eff: Efficiency, nvlink_hop: float | None = None,
                   network_hop: float | None = None) -> tuple:
    """NCCL's LL, LL128 and Simple protocols (constants above) for a GPU of ``compute_capability``.
    Simple's steps are ``nvlink_hop`` / ``network_hop`` (tiers_of: Efficiency's, or the cluster's
    node.nvlink.latency / fabric.link_latency where larger); LL's and LL128's are NCCL's own, which
    include the link. LL128 runs on Ampere and later (NVLink and PCIe-switch-attached NICs, as the
    tuner enables it there); a GPU without a CUDA compute capability (AMD, TPU) gets Simple alone:
    RCCL's and the ICI's tuning are not modelled."""
    nvl = eff.hop_latency_nvlink if nvlink_hop is None else nvlink_hop
    net = eff.hop_latency_network if network_hop is None else network_hop
    simple = Protocol("Simple", eff.collective_base_latency, eff.collective_base_latency, nvl, nvl, net, net,
                      0.0, 1.0, 0.92)
    if compute_capability is None:
        return (simple,)
    cap = next(bw for cc, bw in LL_MAX_BW_ONE_NODE if compute_capability >= cc)
    # a link slower than the one NCCL's constants were measured on (a cluster's node.nvlink.latency /
    # fabric.link_latency above the Simple step, e.g. a long-haul what-if) lengthens every protocol's
    # step by the excess, not Simple's alone
    dn, dw = max(0.0, nvl - eff.hop_latency_nvlink), max(0.0, net - eff.hop_latency_network)
    ll = Protocol("LL", 6.6e-6, 6.8e-6, 0.6e-6 + dn, 0.6e-6 + dn, 2.7e-6 + dw, 5.0e-6 + dw, 1.0e-6,
                  0.5, 0.92 / 3.8, cap, LL_MAX_BW_TWO_NODES, LL_MAX_BW_MANY_NODES)
    out = (ll, simple)
    if compute_capability >= 8.0:
        out = (ll, Protocol("LL128", 14.0e-6, 14.0e-6, 1.9e-6 + dn, 1.25e-6 + dn, 4.0e-6 + dw, 8.5e-6 + dw,
                            1.0e-6, 0.92, 0.92 * 120 / 128), simple)
    return out


def protocols(t: Tiers) -> tuple:
    """The tiers' NCCL protocols; without a table, one Simple protocol of the tiers' own latencies."""
    if t.protocols:
        return t.protocols
    return (Protocol("Simple", t.base, t.base, t.nvlink_hop, t.nvlink_hop, t.network_hop, t.network_hop,
                     0.0, 1.0, 1.0),)


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


def _ring(n: int, nbytes: float, bw: float, factor: float, t: Tiers) -> float:
    """A ring of ``n`` GPUs inside one domain moving factor x (n-1)/n of ``nbytes`` per GPU over
    ``factor`` x (n-1) NVLink steps, base latency included, in NCCL's fastest protocol for the size."""
    if n <= 1 or nbytes <= 0:
        return 0.0
    moved = factor * (n - 1) / n * nbytes
    return min(p.ring_latency(n, 1, n, factor) + p.moving(moved / bw, moved, 1) for p in protocols(t))


def _intra_all_reduce(k: int, nbytes: float, t: Tiers) -> float:
    """All-reduce of ``nbytes`` among ``k`` GPUs of one domain: ring, or NVLS where the switch has it
    (NCCL's tuner takes the faster; NVLS runs the Simple protocol only)."""
    ring = _ring(k, nbytes, t.scale_up_bw(k), 2.0, t)
    if t.nvls_bw > 0 and k > 2:
        nvls = t.nvls_latency or (t.base + 2 * t.nvlink_hop)
        return min(ring, nbytes / t.nvls_bw + nvls)
    return ring


def all_reduce(g: Group, nbytes: float, t: Tiers) -> float:
    if g.size <= 1 or nbytes <= 0:
        return 0.0
    k, n_dom, n = g.per_domain(t), g.domains(t), g.size
    if n_dom == 1:
        return _intra_all_reduce(k, nbytes, t)
    # bandwidth: NVLink and network phases pipelined over chunks and channels (the slower one sets
    # the time); NVLS inside the domain where the switch has it (NCCL's NVLS-tree)
    ring_intra = 2 * (k - 1) / k * nbytes / t.scale_up_bw(k) if k > 1 else 0.0
    nvls_intra = nbytes / t.nvls_bw if t.nvls_bw > 0 and k > 2 else math.inf
    net_bw = g.network_bw(t)
    inter = 2.0 * (n_dom - 1) / n_dom * (nbytes / k) / net_bw
    tree_inter = 2.0 * (nbytes / k) / net_bw   # a tree's algorithm bandwidth is half its bus bandwidth
    bus = 2.0 * (n - 1) / n * nbytes
    best = math.inf
    for p in protocols(t):
        intra = min(ring_intra, nvls_intra) if p.name == "Simple" else ring_intra
        # latency (NCCL's tuning model, src/graph/tuning.cc): a ring's 2(n-1) steps, 2(n_dom-1) of
        # them across the network and the rest over NVLink (each at least the network post overhead);
        # a double binary tree's 2 floor(log2 n_dom) network steps plus the chain inside each domain
        # there and back; the tuner takes the faster (algorithm, protocol)
        ring = p.ring_latency(n, n_dom, k, 2) + p.moving(max(intra, inter), bus, n_dom)
        tree = (p.tree_base + 2 * (int(math.log2(n_dom)) * p.network_tree + (k - 1) * p.nvlink_tree)
                + p.moving(max(intra, tree_inter), 2.0 * nbytes, n_dom, p.tree_bw))
        best = min(best, ring, tree)
    return best


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


def gather_parts(g: Group, nbytes: float, t: Tiers) -> tuple[float, float]:
    """(latency, bandwidth) seconds of a reduce-scatter of an input of ``nbytes`` (or an all-gather
    of an output of ``nbytes``), split for the (algorithm, protocol) NCCL's tuner takes at that size.

    NCCL runs these as one flat ring (no tree) of n-1 steps. A chunk is forwarded as soon as it
    arrives, so the latency is the sum of the hops it crosses: n_dom-1 network hops and the other
    n-n_dom over NVLink (NCCL's own tuning model, src/graph/tuning.cc: nInterSteps = nNodes-1 of
    nsteps = nRanks-1). The bytes each NIC carries are those of a per-rail ring: (n_dom-1)/n_dom
    of nbytes/k; the NVLink and network phases are pipelined (max). With one member per domain
    NCCL's tuner may take PAT instead (above), where it is faster.
    """
    if g.size <= 1 or nbytes <= 0:
        return 0.0, 0.0
    k, n_dom, n = g.per_domain(t), g.domains(t), g.size
    bus = (n - 1) / n * nbytes
    intra = (k - 1) / k * nbytes / t.scale_up_bw(k) if k > 1 else 0.0
    inter = (n_dom - 1) / n_dom * (nbytes / k) / g.network_bw(t) if n_dom > 1 else 0.0
    options = [(p.ring_latency(n, n_dom, k), p.moving(max(intra, inter), bus, n_dom)) for p in protocols(t)]
    if k == 1:
        options.append((_pat(n, 0.0, t), inter / PAT_BANDWIDTH))
    return min(options, key=sum)


def _gather_like(g: Group, nbytes: float, t: Tiers) -> float:
    latency, bandwidth = gather_parts(g, nbytes, t)
    return latency + bandwidth


def reduce_scatter(g: Group, nbytes: float, t: Tiers) -> float:
    return _gather_like(g, nbytes, t)


def all_gather(g: Group, nbytes: float, t: Tiers) -> float:
    return _gather_like(g, nbytes, t)


def broadcast(g: Group, nbytes: float, t: Tiers) -> float:
    """One rank sends ``nbytes`` to all: NCCL pipelines it in chunks along a ring, so every link
    carries the buffer once (S / B) and the last rank waits n-1 hops for the first chunk."""
    if g.size <= 1 or nbytes <= 0:
        return 0.0
    k, n_dom = g.per_domain(t), g.domains(t)
    ring_bw = t.scale_up_bw(2) if t.mesh_links else t.nvlink_bw   # a ring uses one link per neighbour
    bw = ring_bw if n_dom == 1 else min(ring_bw if k > 1 else math.inf, g.network_bw(t))
    return min(p.base + p.moving(nbytes / bw, nbytes, n_dom)
               + (g.size - 1) * (p.nvlink if n_dom == 1 else p.network) for p in protocols(t))


def all_to_all(g: Group, nbytes: float, t: Tiers) -> float:
    """Each rank sends ``nbytes`` in total, split evenly over the group's ranks."""
    if g.size <= 1 or nbytes <= 0:
        return 0.0
    k = g.per_domain(t)
    n = g.size
    intra = nbytes * (k - 1) / n / t.scale_up_bw(k)
    inter = contention.all_to_all_time(n, g.stride, nbytes, t.scaleout, t.network_bw, t.domain_size)
    hop = t.network_hop if n > k else A2A_NVLINK_STEP_S
    return t.base + max(intra, inter) + (n - 1) * hop


# The all-to-all's per-peer step inside a domain: this model's own figure (1 us), not an NCCL ring
# step -- NCCL runs an all-to-all as grouped point-to-point sends and receives, which its tuning model
# does not cost, and DeepEP / HybridEP dispatch with their own kernels. Across domains the network
# hop (14 us) as before. Unchanged when the ring collectives took NCCL's per-protocol latencies.
A2A_NVLINK_STEP_S = 1.0e-6


def send_recv(stride: int, nbytes: float, t: Tiers, peers: int = 2) -> float:
    """Point-to-point transfer between ranks ``stride`` apart (pipeline neighbours); every chain of
    ``peers`` ranks of this kind sends at once."""
    if nbytes <= 0:
        return 0.0
    if Group(peers, stride).domains(t) == 1:   # the whole chain sits in one NVLink domain
        return nbytes / t.scale_up_bw(2) + t.nvlink_hop     # one link on a mesh
    jobs = t.job_gpus or peers * stride
    return nbytes / contention.ring_bandwidth(peers, stride, t.scaleout, jobs, t.network_bw) + t.network_hop
