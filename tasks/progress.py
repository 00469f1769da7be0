"""Rich progress bars (with ETA) for long stages; silent when disabled or when output is not a terminal log."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                           TimeRemainingColumn)


class Bar:
    def __init__(self, progress: Progress | None, task_id: int | None):
        self._progress, self._task = progress, task_id

    def advance(self, amount: float = 1, **fields) -> None:
        if self._progress is not None:
            self._progress.update(self._task, advance=amount, **fields)

    def set(self, completed: float, **fields) -> None:
        if self._progress is not None:
            self._progress.update(self._task, completed=completed, **fields)


@contextmanager
def progress_bar(description: str, total: float, enabled: bool = True, unit: str = "") -> Iterator[Bar]:
    if not enabled:
        yield Bar(None, None)
        return
    progress = Progress(
        TextColumn("[bold blue]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TextColumn(unit), TextColumn("{task.fields[info]}"), TimeElapsedColumn(), TextColumn("eta"),
        TimeRemainingColumn(), console=Console(stderr=True), transient=False,
    )
    with progress:
        yield Bar(progress, progress.add_task(description, total=total, info=""))
