"""Progress bars for long loops (rich), silent unless a label is given."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

T = TypeVar("T")


def progress_bar(items: Iterable[T], *, desc: str | None, total: int | None = None) -> Iterator[T]:
    """Yield ``items``, drawing a bar on stderr labelled ``desc`` (no bar if ``desc`` is None)."""
    if desc is None:
        yield from items
        return
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
    )
    from rich.console import Console

    with Progress(*columns, console=Console(file=sys.stderr), transient=False) as bar:
        task = bar.add_task(desc, total=total)
        for item in items:
            yield item
            bar.advance(task)
