"""Closed-form counts of each network tier, without building the graph (O(tiers), not O(GPUs)).

Each function mirrors one generator: hosts, leaves, units and pods come in a few kinds (full, and
the partly filled last one), so sums over switches are sums over (size, multiplicity) pairs from
``chunks`` and ``spread``. tests/test_topology.py checks every count against the built graph.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from simulator.topology.build import FabricParams
from simulator.topology.clos import check_reach, down_ports, hosts_per_leaf, up_ports
from simulator.topology.direct import dragonfly_shape
from simulator.topology.graph import chunks, spread
from simulator.topology.rail import check_unit


@dataclass(frozen=True)
class Level:
    """A network tier in cables: ``up`` = uplink cables at this tier's switches (0 at the top)."""

    tier: int
    links: int
    span: int
    switches: int
    up: int
    block: int          # GPUs in one contiguous block joined below this tier's uplinks (bisection)


def _spines(loads: list[tuple[int, int]], k: int, down_max: int, o_below: float,
            lower_up: int) -> list[tuple[int, int]]:
    """Spines over one pod of leaves (``loads``: hosts or units per leaf, as chunks): their downlinks."""
    t2 = sum(c * up_ports(size * k, o_below) for size, c in loads)
    n = math.ceil(t2 / down_max)
    check_reach("spine", sum(c for _, c in loads), lower_up, n)
    return spread(t2, n)


def _cores(pods: list[tuple[list[tuple[int, int]], int]], o: float, radix: int) -> tuple[int, int]:
    """(cores, core links) over pods of spines [(spine downlinks as spread, how many pods)]: the
    spines at position j of every pod share core group j, as ``clos.core_groups`` wires them."""
    def up_at(loads, j):
        for load, count in loads:
            if j < count:
                return up_ports(load, o)
            j -= count
        return None

    cuts = {0}                      # positions where some pod's spine uplinks change or end
    for loads, _ in pods:
        total = 0
        for _, count in loads:
            total += count
            cuts.add(total)
    cuts = sorted(cuts)
    cores = links = 0
    for x, y in zip(cuts, cuts[1:]):
        ups = [(up_at(loads, x), mult) for loads, mult in pods if up_at(loads, x) is not None]
        t = sum(u * m for u, m in ups)
        n = _top("core", sum(m for _, m in ups), t, max(u for u, _ in ups), radix)
        cores, links = cores + (y - x) * n, links + (y - x) * t
    return cores, links


def _top(role: str, lowers: int, up: int, lower_up: int, radix: int) -> int:
    n = math.ceil(up / radix)
    check_reach(role, lowers, lower_up, n)
    return n


def fat_tree(p: FabricParams) -> list[Level]:
    h, o, r = p.hosts, p.oversubscription, p.radix
    n_, g, k = h.num_nodes, h.gpus_per_node, h.nics
    if p.kind == "single_switch" or p.tiers == 1:
        return [Level(1, n_ * k, n_ * g, 1, 0, n_ * g)]
    per = hosts_per_leaf(h, r, o[0])
    unit = p.nodes_per_unit if p.tiers == 3 else n_
    units = chunks(n_, unit)
    leaves = sum(uc * sum(c for _, c in chunks(us, per)) for us, uc in units)
    t2 = sum(uc * sum(c * up_ports(s * k, o[0]) for s, c in chunks(us, per)) for us, uc in units)
    big = chunks(units[0][0], per)[0][0]          # hosts on the fullest leaf
    leaf_block = per * g if p.tiers == 2 or unit % per == 0 else unit * g
    first = Level(1, n_ * k, big * g, leaves, t2, leaf_block)
    if p.tiers == 2:
        spines = _top("spine", leaves, t2, up_ports(big * k, o[0]), r)
        return [first, Level(2, t2, n_ * g, spines, 0, n_ * g)]
    d2 = down_ports(r, o[1])
    pods = []
    for us, uc in units:
        lv = chunks(us, per)
        pods.append((_spines(lv, k, d2, o[0], up_ports(lv[0][0] * k, o[0])), uc))
    spines = sum(m * sum(c for _, c in loads) for loads, m in pods)
    cores, t3 = _cores(pods, o[1], r)
    return [first, Level(2, t2, units[0][0] * g, spines, t3, unit * g),
            Level(3, t3, n_ * g, cores, 0, n_ * g)]


def rail_optimized(p: FabricParams) -> list[Level]:
    h, o, r, unit = p.hosts, p.oversubscription, p.radix, p.nodes_per_unit
    n_, g, k, gpr = h.num_nodes, h.gpus_per_node, h.nics, h.gpus_per_rail
    check_unit(unit, n_, r, o[0])
    units = chunks(n_, unit)
    n_units = sum(c for _, c in units)
    t2 = k * sum(c * up_ports(s, o[0]) for s, c in units)
    first = Level(1, n_ * k, min(unit, n_) * gpr, k * n_units, t2, unit * g)
    lead_up = up_ports(units[0][0], o[0])
    if p.tiers == 2:
        spines = _top("spine", k * n_units, t2, lead_up, r)
        return [first, Level(2, t2, n_ * g, spines, 0, n_ * g)]
    d2 = down_ports(r, o[1])
    pods = [(_spines(pod, 1, d2, o[0], up_ports(pod[0][0], o[0])), mult * k)
            for pod, mult in _unit_pods(n_, unit, d2)]
    spines = sum(m * sum(c for _, c in loads) for loads, m in pods)
    cores, t3 = _cores(pods, o[1], r)
    return [first, Level(2, t2, min(d2 * unit, n_) * gpr, spines, t3, d2 * unit * g),
            Level(3, t3, n_ * g, cores, 0, n_ * g)]


def _unit_pods(num_nodes: int, unit: int, per_pod: int) -> list[tuple[list[tuple[int, int]], int]]:
    """Pods of ``per_pod`` consecutive units: [(unit sizes of the pod as chunks, how many pods)]."""
    full, rest = divmod(num_nodes, unit)
    whole, left = divmod(full, per_pod)
    out = [([(unit, per_pod)], whole)] if whole else []
    tail = [(s, c) for s, c in ((unit, left), (rest, 1)) if s and c]
    return out + ([(tail, 1)] if tail else [])


def rail_only(p: FabricParams) -> list[Level]:
    h, o, r, unit = p.hosts, p.oversubscription, p.radix, p.nodes_per_unit
    n_, g, k, gpr = h.num_nodes, h.gpus_per_node, h.nics, h.gpus_per_rail
    if p.tiers == 1:
        return [Level(1, n_ * k, n_ * gpr, k, 0, n_ * g)]
    check_unit(unit, n_, r, o[0])
    units = chunks(n_, unit)
    n_units = sum(c for _, c in units)
    per_rail = sum(c * up_ports(s, o[0]) for s, c in units)
    spines = k * _top("spine", n_units, per_rail, up_ports(units[0][0], o[0]), r)
    return [Level(1, n_ * k, min(unit, n_) * gpr, k * n_units, k * per_rail, unit * g),
            Level(2, k * per_rail, n_ * gpr, spines, 0, n_ * g)]


def torus(p: FabricParams) -> list[Level]:
    n = p.hosts.num_gpus
    links = n * sum(1 for d in p.torus_dims if d >= 2)
    return [Level(1, links, n, 0, 0, n)] if links else []


def dragonfly(p: FabricParams) -> list[Level]:
    h, o, r, unit = p.hosts, p.oversubscription, p.radix, p.nodes_per_unit
    n_, g, k = h.num_nodes, h.gpus_per_node, h.nics
    per, _, links_per_pair = dragonfly_shape(h, unit, r, o[0])
    groups = chunks(n_, unit)
    routers = [(math.ceil(s / per), c) for s, c in groups]
    local = sum(c * a * (a - 1) // 2 for a, c in routers)
    n_groups = sum(c for _, c in groups)
    glob = links_per_pair * n_groups * (n_groups - 1) // 2
    out = [Level(1, n_ * k, min(per, groups[0][0]) * g, sum(a * c for a, c in routers),
                 2 * (local + glob), per * g if unit % per == 0 else unit * g)]
    if local:
        out.append(Level(2, local, groups[0][0] * g, 0, 0, unit * g))
    if glob:
        out.append(Level(3, glob, n_ * g, 0, 0, n_ * g))
    return out


LEVELS = {"fat_tree": fat_tree, "leaf_spine": fat_tree, "single_switch": fat_tree,
          "rail_optimized_fat_tree": rail_optimized, "rail_only": rail_only, "torus3d": torus,
          "dragonfly": dragonfly}
