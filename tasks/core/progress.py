"""Progress of long stages: a rich progress bar (with ETA) in the terminal, and the same progress as log lines in
the Prefect task run (every 10%), so a run started from a schedule or the UI shows it too."""
from __future__ import annotations

import logging
import time
from contextlib import contextmanager
from typing import Iterator

from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                           TimeRemainingColumn)


def run_logger() -> logging.Logger | logging.LoggerAdapter:
    """The Prefect task/flow run logger when called inside a run (its lines show in the UI), else a plain one."""
    try:
        from prefect.logging import get_run_logger

        return get_run_logger()
    except Exception:  # outside a Prefect run (benchmarks, unit tests)
        return logging.getLogger("winnow")


class Bar:
    def __init__(self, progress: Progress | None, task_id: int | None, description: str, total: float, unit: str):
        self._progress, self._task = progress, task_id
        self._description, self._total, self._unit = description, total, unit
        self._done, self._logged_decile = 0.0, 0
        self._logger = run_logger()

    def advance(self, amount: float = 1, **fields) -> None:
        self.set(self._done + amount, **fields)

    def set(self, completed: float, **fields) -> None:
        self._done = completed
        if self._progress is not None:
            self._progress.update(self._task, completed=completed, **fields)
        decile = int(10 * completed / self._total) if self._total else 10
        if decile > self._logged_decile:
            self._logged_decile = decile
            info = f" ({fields['info']})" if fields.get("info") else ""
            self._logger.info(f"{self._description}: {completed:g}/{self._total:g} {self._unit}{info}")


@contextmanager
def progress_bar(description: str, total: float, enabled: bool = True, unit: str = "") -> Iterator[Bar]:
    if not enabled:
        yield Bar(None, None, description, total, unit)
        return
    progress = Progress(
        TextColumn("[bold blue]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TextColumn(unit), TextColumn("{task.fields[info]}"), TimeElapsedColumn(), TextColumn("eta"),
        TimeRemainingColumn(), console=Console(stderr=True), transient=False,
    )
    with progress:
        yield Bar(progress, progress.add_task(description, total=total, info=""), description, total, unit)


class Laps:
    """Seconds between successive marks, by name: where one iteration of a loop spends its time (online RL
    records rollout, labelling, scoring and update seconds per iteration, as verl's timing_s/* do)."""

    def __init__(self) -> None:
        self.last, self.seconds = time.perf_counter(), {}

    def mark(self, name: str) -> None:
        now = time.perf_counter()
        self.seconds[name], self.last = now - self.last, now
