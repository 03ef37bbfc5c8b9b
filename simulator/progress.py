"""A progress bar on stderr (rich), so stdout keeps only results (tables, JSON)."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator


@contextmanager
def progress_bar(total: int, done: int = 0, label: str = "simulating",
                 enabled: bool = True) -> Iterator[Callable[[int], None]]:
    """Yield ``advance(k)``; draws a bar with count, rate and time left while the block runs."""
    if not enabled or total <= 0:
        yield lambda k: None
        return
    from rich.console import Console
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                               TimeRemainingColumn)

    console = Console(stderr=True)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=False, disable=not console.is_terminal) as bar:
        task = bar.add_task(label, total=total, completed=done)
        yield lambda k: bar.advance(task, k)
