"""A run's lineage: every artifact `run_stage` committed or reused for one run, in order, under the label its
Prefect task run shows (e.g. `train_sft[base]`). Reports are built from it, so flows keep no stage lists of their
own (issue 12: hand-kept lists went stale, e.g. a row pointing at the wrong stage's artifact)."""
from __future__ import annotations

import threading

from pydantic import BaseModel

from tasks.core.store import ArtifactRef


class LineageEntry(BaseModel):
    label: str  # the task run's name, e.g. "train_sft[rft1]"; the stage name when no task run is active
    ref: ArtifactRef
    reused: bool


_RUNS: dict[str, list[LineageEntry]] = {}
_LOCK = threading.Lock()  # stages of one run may commit from several threads


def record(run_id: str, ref: ArtifactRef, reused: bool) -> None:
    entry = LineageEntry(label=_current_label(ref.stage), ref=ref, reused=reused)
    with _LOCK:
        entries = _RUNS.setdefault(run_id, [])
        if all(e.ref != ref or e.label != entry.label for e in entries):
            entries.append(entry)


def lineage(run_id: str) -> list[LineageEntry]:
    """The run's artifacts in the order their stages finished."""
    with _LOCK:
        return list(_RUNS.get(run_id, []))


def _current_label(stage: str) -> str:
    """The Prefect task run's name when the task names its runs (`task_run_name=`), else the stage."""
    try:
        from prefect.context import TaskRunContext

        context = TaskRunContext.get()
    except ImportError:  # pragma: no cover - prefect is a dependency
        return stage
    if context is None or context.task.task_run_name is None or context.task.name != stage:
        return stage
    return context.task_run.name
