"""Link sharing between concurrent collectives on a hierarchical fabric, using its symmetry.

All groups of one kind run the same collective at the same time (every DP group reduces its
gradients at the end of the backward pass; every pipeline sends at once). On a regular fabric with
ECMP, every link of a tier carries the same load, so max-min fair sharing reduces to counting, per
tier, how many ring flows leave one subtree and dividing the subtree's uplink capacity among them:
O(tiers) work whatever the GPU count. cost/flows.py computes the same thing flow by flow on the
real graph; tests check that the two agree on small fabrics.
"""
from __future__ import annotations

from dataclasses import dataclass

from simulator.topology.placement import GroupShape


@dataclass(frozen=True)
class FabricTier:
    """One level of the scale-out hierarchy, above the NVLink domain."""

    name: str
    span: int               # GPUs below one subtree at this level (math.inf-like for the top)
    up_per_gpu: float       # bytes/s per GPU of uplink capacity out of one subtree


def ring_crossings(n: int, stride: int, span: float, base: int = 0) -> int:
    """Ring edges (member i -> i+1, and the wrap-around) of a group of ``n`` ranks ``stride`` apart,
    starting at rank ``base``, whose two ends lie in different aligned blocks of ``span`` ranks.

    Block indices of the members never decrease, so the forward edges change block once per block
    boundary walked over (every step when stride >= span); the wrap-around edge adds one more
    whenever the ring spans more than one block.
    """
    if n <= 1:
        return 0
    first, last = base // span, (base + (n - 1) * stride) // span
    if first == last:
        return 0
    forward = n - 1 if stride >= span else int(last - first)
    return forward + 1


def flows_out_of_subtree(n: int, stride: int, span: float, job_gpus: int) -> float:
    """Ring flows leaving one subtree of ``span`` GPUs when every group of this kind is active and
    every GPU of the job belongs to exactly one group (groups tile the job's ranks)."""
    if span >= job_gpus:
        return 0.0
    groups = job_gpus / n
    return groups * ring_crossings(n, stride, span) / (job_gpus / span)


def ring_bandwidth(n: int, stride: int, tiers: tuple[FabricTier, ...], job_gpus: int,
                   nic_per_gpu: float) -> float:
    """Bytes/s each ring flow gets: the NIC, or the tightest tier its flows cross, shared max-min."""
    rate = nic_per_gpu
    for t in tiers:
        f = flows_out_of_subtree(n, stride, t.span, job_gpus)
        if f > 0:
            rate = min(rate, t.span * t.up_per_gpu / f)
    return rate


def all_to_all_time(n: int, stride: int, nbytes: float, tiers: tuple[FabricTier, ...],
                    nic_per_gpu: float, domain: int) -> float:
    """Seconds for every rank to send ``nbytes`` spread evenly over the group's ranks, network part:
    the busiest of the NIC and each tier's uplinks."""
    worst = 0.0
    shape = GroupShape(n, stride)
    in_domain = shape.members_within(domain)
    if n > in_domain:
        worst = nbytes * (n - in_domain) / n / nic_per_gpu
    for t in tiers:
        inside = shape.members_within(t.span)
        if inside < n:
            worst = max(worst, nbytes * (n - inside) / n / t.up_per_gpu)
    return worst


RAIL_FABRICS = ("rail_optimized_fat_tree", "rail_only")


def from_tier_view(view, kind: str, gpus_per_node: int, num_gpus: int, efficiency: float) -> tuple[FabricTier, ...]:
    """FabricTiers from topology.tier_view: each network tier's span (in ranks: rail fabrics hold one
    rail of many nodes under a switch, and NCCL reaches the other rails over NVLink first, PXN) and
    the per-GPU capacity of the links above it."""
    net = [t for t in view if t.kind == "network"]
    out = []
    for lower, upper in zip(net, net[1:]):
        if lower.span is None:
            continue
        span = lower.span * (gpus_per_node if kind in RAIL_FABRICS else 1)
        out.append(FabricTier(lower.name, span, upper.total_capacity * efficiency / num_gpus))
    return tuple(out)


def tiers_for(nodes_per_unit: int, gpus_per_node: int, nic_per_gpu: float, oversubscription: float,
              job_gpus: int) -> tuple[FabricTier, ...]:
    """The scale-out hierarchy the cluster YAML describes: scalable units of ``nodes_per_unit`` nodes
    that are non-blocking inside, joined by a tier whose uplinks are ``oversubscription``:1."""
    unit = nodes_per_unit * gpus_per_node
    if unit >= job_gpus:
        return ()
    return (FabricTier("spine", unit, nic_per_gpu / oversubscription),)


