"""Rank placement: Megatron-LM's order (TP innermost, then CP, DP, PP; EP carved out of DP x CP)
onto GPUs in index order, so consecutive ranks share a node and a scale-up domain; or, with
``order="tp-cp-pp-dp"``, data parallelism outermost (Llama 3 paper, section 3.3.2: "[TP, CP, PP,
DP]"), which keeps a pipeline inside the fabric's lower tiers and sends the gradient collectives
across them.

A communicator of one kind is then a set of ``size`` ranks ``stride`` apart; every rank belongs to
exactly one group of each kind, and all groups of a kind communicate at the same time. Which links a
group uses follows from its size and stride against the domain and the fabric's tier spans
(``links``); the cost model (cost/comm.py, cost/contention.py) reads the same two numbers.
"""
from __future__ import annotations

from dataclasses import dataclass

KINDS = ("tp", "cp", "ep", "dp", "expert_dp", "pp")


@dataclass(frozen=True)
class GroupShape:
    """``size`` ranks spaced ``stride`` apart in the global rank order."""

    size: int
    stride: int

    def members_within(self, span: float) -> int:
        """Members of one group that fall in one aligned block of ``span`` ranks (a scale-up
        domain, or one subtree of a fabric tier)."""
        if self.stride >= span:
            return 1
        return int(min(self.size, max(1, span // self.stride)))


# the orders parallelism.rank_order accepts (config/workload.py spells the same list as its Literal;
# tests/test_placement.py checks the two agree)
ORDERS = ("tp-cp-dp-pp", "tp-cp-pp-dp")


def group_shape(kind: str, tp: int, cp: int, dp: int, pp: int, ep: int = 1,
                order: str = "tp-cp-dp-pp") -> GroupShape:
    """The shape of every communicator of ``kind`` under the rank order (Megatron's by default)."""
    if order == "tp-cp-pp-dp":
        return _dp_outermost(kind, tp, cp, dp, pp)
    if order != "tp-cp-dp-pp":
        raise KeyError(f"unknown rank order {order!r}; expected one of {', '.join(ORDERS)}")
    if kind == "tp":
        return GroupShape(tp, 1)
    if kind == "cp":
        return GroupShape(cp, tp)
    if kind == "ep":
        return GroupShape(ep, tp * cp)                     # consecutive data-parallel ranks
    if kind == "dp":
        return GroupShape(dp * cp, tp)                     # gradients reduce over DP x CP
    if kind == "expert_dp":
        return GroupShape(max(dp * cp // ep, 1), tp * ep)
    if kind == "pp":
        return GroupShape(pp, tp * cp * dp)
    raise KeyError(f"unknown group kind {kind!r}; expected one of {', '.join(KINDS)}")


def _dp_outermost(kind: str, tp: int, cp: int, dp: int, pp: int) -> GroupShape:
    """Group shapes with the ranks ordered TP, CP, PP, DP (no expert parallelism). The gradient
    group (DP x CP) has its CP ranks ``tp`` apart and its DP ranks ``tp*cp*pp`` apart; it is drawn as
    dp*cp evenly spaced ranks ``tp*pp`` apart: the same size, one member per node when TP fills a
    node, a span across the job like the real group's (within 1/dp); exact at CP 1."""
    if kind == "tp":
        return GroupShape(tp, 1)
    if kind == "cp":
        return GroupShape(cp, tp)
    if kind == "pp":
        return GroupShape(pp, tp * cp)
    if kind in ("dp", "expert_dp"):
        return GroupShape(dp * cp, tp * pp)
    if kind == "ep":
        return GroupShape(1, tp * cp)
    raise KeyError(f"unknown group kind {kind!r}; expected one of {', '.join(KINDS)}")


def coordinates(rank: int, tp: int, cp: int, dp: int, pp: int) -> dict[str, int]:
    """The (tp, cp, dp, pp) coordinates of a global rank."""
    return {"tp": rank % tp, "cp": rank // tp % cp, "dp": rank // (tp * cp) % dp, "pp": rank // (tp * cp * dp) % pp}


def members(shape: GroupShape, first: int = 0) -> list[int]:
    return [first + i * shape.stride for i in range(shape.size)]


def links(shape: GroupShape, domain_size: int, tier_spans: list[tuple[str, int]]) -> dict:
    """Where one group's traffic goes: members per scale-up domain, domains spanned, and for each
    fabric tier (name, span in GPUs) whether the group reaches past one subtree of it."""
    span = (shape.size - 1) * shape.stride + 1
    per_domain = shape.members_within(domain_size)
    return {
        "members_per_domain": per_domain,
        "domains": -(-shape.size // per_domain),
        "scale_up_only": span <= domain_size,
        "tiers_crossed": [name for name, s in tier_spans if span > s],
    }
