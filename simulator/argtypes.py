"""argparse value types shared by every subcommand (the command-line face only: nothing below the
CLI imports this module, so the studies and the CLI never import each other in a circle)."""
from __future__ import annotations

import argparse
import sys

from simulator.errors import short


def _bounded_int(text: str, least: int, what: str, most: int | None = None) -> int:
    from simulator.limits import MAX_INT

    most = MAX_INT if most is None else most
    try:
        value = int(text) if len(text) <= 30 else None
    except ValueError:
        value = None
    if value is None or not least <= value <= MAX_INT:   # a larger one gets the caller's own message
        raise argparse.ArgumentTypeError(f"expected {what} up to {most:,}, got {short(text)}")
    return value


def positive_int(text: str) -> int:
    """argparse type: a positive integer (at most limits.MAX_INT), with a clear message otherwise."""
    return _bounded_int(text, 1, "a positive integer")


def replica_count(text: str) -> int:
    """argparse type: Monte Carlo replicas, 1 to limits.MAX_REPLICAS (a note on stderr above
    limits.WARN_REPLICAS: each replica simulates a whole campaign)."""
    from simulator.limits import MAX_REPLICAS, WARN_REPLICAS

    value = _bounded_int(text, 1, "a positive integer")
    if value > MAX_REPLICAS:
        raise argparse.ArgumentTypeError(
            f"at most {MAX_REPLICAS:,} replicas (the Monte Carlo error is already ~0.3 % there; each "
            f"replica simulates a whole campaign and keeps its outcome in memory), got {value:,}")
    if value > WARN_REPLICAS:
        print(f"note: {value:,} replicas take about {value / 32:,.0f} times as long as the default 32",
              file=sys.stderr)
    return value


def top_count(text: str) -> int:
    """argparse type: layouts a search re-simulates with the full engines, 1 to limits.MAX_TOP (each
    is a step simulation and a Monte Carlo campaign; the closed-form ranking covers the rest)."""
    from simulator.limits import MAX_TOP

    value = _bounded_int(text, 1, "a positive integer", MAX_TOP)
    if value > MAX_TOP:
        raise argparse.ArgumentTypeError(
            f"at most {MAX_TOP} layouts re-simulated (each runs the step simulation and a whole "
            f"campaign; the closed-form ranking already covers every layout), got {value:,}")
    return value


def non_negative_int(text: str) -> int:
    """argparse type: an integer >= 0 (e.g. a seed), with a clear message otherwise."""
    return _bounded_int(text, 0, "a non-negative integer")
