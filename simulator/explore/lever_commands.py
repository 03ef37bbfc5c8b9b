"""CLI commands for cost levers: levers, plan (issue 9)."""
from __future__ import annotations


def register(sub) -> None:
    """Add this module's subcommands to the `trainsim` parser (none yet)."""
