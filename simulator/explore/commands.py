"""CLI commands for studies: compare, sweep, search, size, sensitivity (issue 8)."""
from __future__ import annotations


def register(sub) -> None:
    """Add this module's subcommands to the `trainsim` parser (none yet)."""
