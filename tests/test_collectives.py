"""Collectives: hand-computed pipelined multi-tier cases, NVLS, mesh scale-up, published nccl-tests figures."""
import dataclasses
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from simulator.config.cluster import ClusterConfig
from simulator.config.loader import read_yaml
from simulator.config.scenario import resolve_gpu
from simulator.cost import comm
from simulator.cost.efficiency import DEFAULT

TOPOLOGIES = Path(__file__).resolve().parents[1] / "topologies"
S = 1e9   # nccl-tests' 1 GB point

TIERS = comm.Tiers(domain_size=8, nvlink_bw=400e9, network_bw=50e9, nvlink_hop=1e-6, network_hop=5e-6, base=0.0)


def _tiers(name: str, gpus: int, gpu: str | None = None, **nvlink) -> comm.Tiers:
    raw = read_yaml(TOPOLOGIES / name)
    if gpu:
        raw["gpu"] = gpu
    raw["node"]["nvlink"].update(nvlink)
    cluster = ClusterConfig.model_validate(raw)
    return comm.tiers_of(cluster, resolve_gpu(cluster, lambda p: name), DEFAULT, gpus)


def busbw_all_reduce(n: int, seconds: float) -> float:
    return 2 * (n - 1) / n * S / seconds


def test_cross_domain_all_reduce_pipelines_the_tiers_by_hand():
    """32 GPUs in 4 domains of 8: NVLink phase 2*7/8*S/400e9 = 4.375 ms, network phase (per-rail ring
    of 4 over S/8) 2*3/4*(S/8)/50e9 = 3.75 ms; pipelined: the slower one, plus the ring's 2*3 network
    steps and 2*28 NVLink steps. The tree's latency is lower (2*2 network + 2*7 NVLink steps) but its
    algorithm bandwidth is half its bus bandwidth (2*(S/8)/50e9 = 5 ms), so at 1 GB the ring wins."""
    t = comm.all_reduce(comm.Group(32, 1), S, TIERS)
    intra, inter = 2 * 7 / 8 * S / 400e9, 2 * 3 / 4 * (S / 8) / 50e9
    assert t == pytest.approx(max(intra, inter) + 6 * 5e-6 + 56 * 1e-6, rel=1e-12)
    assert t < intra + inter


def test_cross_domain_all_gather_pipelines_the_tiers_by_hand():
    t = comm.all_gather(comm.Group(32, 1), S, TIERS)
    intra, inter = 7 / 8 * S / 400e9, 3 / 4 * (S / 8) / 50e9
    # a chunk crosses 3 network hops and 28 NVLink hops (NCCL's ring model: nNodes-1 inter steps)
    assert t == pytest.approx(max(intra, inter) + 3 * 5e-6 + 28 * 1e-6, rel=1e-12)


def test_gather_latency_follows_nccl_ring_model_not_one_network_hop_per_rank():
    """A 1-byte all-gather over 1,024 ranks in 128 domains: NCCL's tuning model charges the network
    latency on the ring's 127 inter-node steps and the NVLink latency on the other 896
    (src/graph/tuning.cc); 1,023 network hops would be 4x that here."""
    t = comm.all_gather(comm.Group(1024, 1), 1.0, TIERS)
    assert t == pytest.approx(127 * 5e-6 + 896 * 1e-6, rel=1e-6)
    assert comm.reduce_scatter(comm.Group(1024, 1), 1.0, TIERS) == pytest.approx(t)


def test_one_gpu_per_node_gathers_take_pat_where_it_is_faster():
    """One member per domain (a DP group strided over nodes): the ring's 63 steps all cross the
    network, 315 us for 1 byte; NCCL's PAT (src/graph/tuning.cc) costs 8 us + log2(64) x 5/3.5 us +
    64 x 2.8 us = 196 us and its tuner takes it. A large buffer keeps the ring: PAT's bus bandwidth
    is 0.75 of it. With 8 members per domain PAT is not offered."""
    pat = 8e-6 + 6 * 5e-6 / 3.5 + 64 * 2.8e-6
    assert comm.all_gather(comm.Group(64, 8), 1.0, TIERS) == pytest.approx(pat + 63 / 64 / 50e9 / 0.75, rel=1e-9)
    assert comm.reduce_scatter(comm.Group(64, 8), 1.0, TIERS) == pytest.approx(pat + 63 / 64 / 50e9 / 0.75, rel=1e-9)
    big = 1e9
    assert comm.all_gather(comm.Group(64, 8), big, TIERS) == pytest.approx(63 / 64 * big / 50e9 + 63 * 5e-6, rel=1e-9)
    assert comm.all_gather(comm.Group(512, 1), 1.0, TIERS) == pytest.approx(63 * 5e-6 + 448 * 1e-6, rel=1e-6)


def test_tree_latency_wins_at_many_domains():
    """Small buffers over 64 domains: a double binary tree's 2 log2(64) = 12 network steps (NCCL's
    tuning model, src/graph/tuning.cc), not a ring's 2*63."""
    t = comm.all_reduce(comm.Group(512, 1), 8.0, dataclasses.replace(TIERS, nvlink_hop=0.0))
    assert t == pytest.approx(12 * 5e-6, rel=1e-3)


def test_all_reduce_ring_and_tree_follow_nccl_tuning_model():
    """2 domains of 8. A 1 GB buffer takes the ring: its bandwidth term (NVLink phase 2*7/8*S/400e9 =
    4.375 ms against the network's 2*1/2*(S/8)/50e9 = 2.5 ms) plus its 2(n-1) = 30 steps, 2 across the
    network and 28 over NVLink (src/graph/tuning.cc), not 2(k-1) = 14 NVLink steps as if one domain's
    chain were the whole ring. The tree's algorithm bandwidth is half its bus bandwidth (2*(S/8)/50e9
    = 5 ms), so it loses there, but a 1-byte buffer takes it: 2*(1 network + 7 NVLink) steps."""
    ring = comm.all_reduce(comm.Group(16, 1), S, TIERS)
    assert ring == pytest.approx(2 * 7 / 8 * S / 400e9 + 2 * 5e-6 + 28 * 1e-6, rel=1e-12)
    bw = max(2 * 7 / 8 * 1.0 / 400e9, 2 * (1.0 / 8) / 50e9)
    assert comm.all_reduce(comm.Group(16, 1), 1.0, TIERS) == pytest.approx(2 * (5e-6 + 7e-6) + bw, rel=1e-6)
    # 64 domains of 8: the tree's 12 network steps and one domain's chain there and back
    t = comm.all_reduce(comm.Group(512, 1), 1.0, TIERS)
    assert t == pytest.approx(12 * 5e-6 + 14 * 1e-6, rel=1e-3)


def test_small_collectives_take_nccl_low_latency_protocols():
    """On an NVIDIA GPU the tuner's LL protocol (src/graph/tuning.cc @ 5067397c) runs small buffers:
    an 8-byte all-reduce over 8 H100 of one node costs LL's 6.6 us base + 14 NVLink steps x 0.6 us
    = 15.0 us (Simple: 8.4 + 14 x 1 = 22.4 us); over 16 nodes of 8 a tree under LL: 6.8 us + 2 x
    (4 network steps x 5.0 us + 7 NVLink steps x 0.6 us) = 55.2 us. A 1 GB buffer keeps Simple at
    full bandwidth: LL's bus bandwidth is capped at 141 GB/s in a Hopper node (llMaxBws)."""
    one = _tiers("dgx-h100-superpod.yaml", 8)
    assert [p.name for p in one.protocols] == ["LL", "LL128", "Simple"]
    assert comm.all_reduce(comm.Group(8, 1), 8.0, one) == pytest.approx(6.6e-6 + 14 * 0.6e-6, rel=1e-3)
    many = _tiers("dgx-h100-superpod.yaml", 128)
    assert comm.all_reduce(comm.Group(128, 1), 8.0, many) == pytest.approx(6.8e-6 + 2 * (4 * 5e-6 + 7 * 0.6e-6),
                                                                          rel=1e-3)
    simple_only = dataclasses.replace(one, protocols=one.protocols[-1:])
    big = comm.all_reduce(comm.Group(8, 1), S, one)
    assert big == pytest.approx(comm.all_reduce(comm.Group(8, 1), S, simple_only), rel=1e-12)
    assert big < 2 * 7 / 8 * S / 141e9 / 2
    # a GPU without a CUDA compute capability (AMD) gets Simple alone
    assert [p.name for p in comm.nccl_protocols(None, DEFAULT)] == ["Simple"]


_H100 = _tiers("dgx-h100-superpod.yaml", 1024)
_SIMPLE = dataclasses.replace(_H100, protocols=_H100.protocols[-1:])


@settings(max_examples=60, deadline=None)
@given(st.sampled_from([2, 4, 8, 16, 64, 256, 1024]), st.sampled_from([1, 2, 4, 8]),
       st.floats(1.0, 4e9), st.floats(1.01, 8.0))
def test_protocol_choice_never_slower_than_simple_and_grows_with_size(size, stride, nbytes, grow):
    """The tuner's choice among LL / LL128 / Simple is a minimum, so no collective costs more than
    under Simple alone, and none gets cheaper when its buffer grows."""
    g = comm.Group(size, stride)
    for fn in (comm.all_reduce, comm.all_gather, comm.reduce_scatter, comm.broadcast):
        t = fn(g, nbytes, _H100)
        assert t <= fn(g, nbytes, _SIMPLE) * (1 + 1e-12)
        assert fn(g, nbytes * grow, _H100) >= t * (1 - 1e-12)
    lat, bw = comm.gather_parts(g, nbytes, _H100)
    assert lat >= 0 and bw >= 0 and lat + bw == pytest.approx(comm.all_gather(g, nbytes, _H100), rel=1e-12)


def test_dgx_h100_multi_node_all_reduce_bus_bandwidth_matches_nccl_tests():
    """16 DGX H100 nodes, 8 x 400G NDR each, 1 GB all-reduce: nccl-tests report ~370-385 GB/s bus
    bandwidth (issue 13; NVIDIA DGX SuperPOD H100 acceptance figures); 320-350 on busier fabrics
    (reference.md). Summing the tiers gave 216 GB/s."""
    bw = busbw_all_reduce(128, comm.all_reduce(comm.Group(128, 1), S, _tiers("dgx-h100-superpod.yaml", 128)))
    assert 350e9 <= bw <= 400e9


def test_dgx_h100_in_node_all_reduce_nvls_and_ring():
    """8 x H100 in one NVSwitch node: NVLS ~480 GB/s bus bandwidth (reference.md); the ring without
    NVLS ~360-370 GB/s (nccl-tests, NCCL_NVLS_ENABLE=0)."""
    nvls = busbw_all_reduce(8, comm.all_reduce(comm.Group(8, 1), S, _tiers("dgx-h100-superpod.yaml", 8)))
    ring = busbw_all_reduce(8, comm.all_reduce(comm.Group(8, 1), S, _tiers("dgx-h100-superpod.yaml", 8, nvls=False)))
    assert nvls == pytest.approx(480e9, rel=0.03)
    assert 340e9 <= ring <= 390e9


def test_no_nvls_before_nvswitch_3_nor_on_a_mesh():
    assert _tiers("dgx-a100-selene.yaml", 8).nvls_bw == 0.0
    assert _tiers("dgx-h100-superpod.yaml", 8, gpu="mi300x", kind="infinity_fabric", bandwidth=None).nvls_bw == 0.0
    assert _tiers("gb200-nvl72.yaml", 72).nvls_bw > 0


def test_mesh_tp2_uses_the_one_link_the_pair_shares():
    """MI300X Infinity Fabric: 7 links of 64 GB/s per direction. A TP2 all-reduce uses one link:
    2*(1/2)*S / (64e9 * eff) + 2 hops; a TP8 ring has all 7 links (~7x the bandwidth)."""
    t = _tiers("dgx-h100-superpod.yaml", 8, gpu="mi300x", kind="infinity_fabric", bandwidth=None)
    tp2 = comm.all_reduce(comm.Group(2, 1), S, t)
    assert tp2 == pytest.approx(t.base + S / (64e9 * DEFAULT.nvlink) + 2 * t.nvlink_hop, rel=1e-9)
    tp8 = comm.all_reduce(comm.Group(8, 1), S, t)
    assert busbw_all_reduce(8, tp8) == pytest.approx(448e9 * DEFAULT.nvlink, rel=0.01)
    switch = _tiers("dgx-h100-superpod.yaml", 8, gpu="mi300x", kind="nvswitch", nvls=False, bandwidth=None)
    assert comm.all_reduce(comm.Group(2, 1), S, switch) < tp2 / 6   # a switch would give the pair all 448 GB/s
    assert comm.send_recv(1, S, t) == pytest.approx(S / (64e9 * DEFAULT.nvlink) + t.nvlink_hop, rel=1e-9)


def test_nvlink_and_network_efficiencies_are_separate():
    t = _tiers("dgx-h100-superpod.yaml", 8)
    assert t.nvlink_bw == pytest.approx(450e9 * DEFAULT.nvlink)
    assert t.network_bw == pytest.approx(50e9 * DEFAULT.network)


def test_a_slower_link_lengthens_every_protocols_step():
    """A cluster's link latency above NCCL's measured step used to reach the Simple protocol only, so a
    latency what-if barely moved the LL / LL128 choices (and the step)."""
    from simulator.cost.comm import nccl_protocols
    from simulator.cost.efficiency import DEFAULT

    base = {p.name: p for p in nccl_protocols(9.0, DEFAULT)}
    slow = {p.name: p for p in nccl_protocols(9.0, DEFAULT, nvlink_hop=DEFAULT.hop_latency_nvlink + 50e-6,
                                              network_hop=DEFAULT.hop_latency_network + 1e-3)}
    for name in ("LL", "LL128", "Simple"):
        assert slow[name].nvlink == pytest.approx(base[name].nvlink + 50e-6)
        assert slow[name].network == pytest.approx(base[name].network + 1e-3)
    # a link faster than the defaults changes nothing (NCCL's constants already include the link)
    fast = {p.name: p for p in nccl_protocols(9.0, DEFAULT, nvlink_hop=0.1e-6, network_hop=1e-6)}
    assert fast["LL"] == base["LL"] and fast["LL128"] == base["LL128"]
