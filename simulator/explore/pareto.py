"""Pareto fronts: the points no other point beats on every objective (all minimised)."""
from __future__ import annotations

from typing import Sequence


def dominates(a: Sequence[float], b: Sequence[float]) -> bool:
    """``a`` is no worse than ``b`` on every objective and better on at least one."""
    return all(x <= y for x, y in zip(a, b)) and any(x < y for x, y in zip(a, b))


def pareto_front(points: Sequence[Sequence[float]]) -> list[int]:
    """Indices of the non-dominated points, in input order; of identical points only the first
    is kept (so the front has no duplicates)."""
    order = sorted(range(len(points)), key=lambda i: (tuple(points[i]), i))
    front: list[int] = []
    for i in order:   # a point can only be dominated by one sorted before it
        p = tuple(points[i])
        if any(tuple(points[j]) == p or dominates(points[j], p) for j in front):
            continue
        front.append(i)
    return sorted(front)
