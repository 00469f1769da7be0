"""A table committed to a test's store as a stage's artifact, for stage tests that start from stored rows."""
from __future__ import annotations

from pathlib import Path

from tasks.core.store import ArtifactRef, ArtifactStore
from tasks.core.tables import write_rows


def commit_table(store: ArtifactStore, stage: str, name: str, rows: list[dict], tmp_path: Path) -> ArtifactRef:
    """`rows` as `<name>.parquet` of an artifact of `stage` (key `<stage>-test`)."""
    out = tmp_path / f"{stage}-{name}"
    write_rows(out / f"{name}.parquet", rows)
    return store.commit(stage, f"{stage}-test", out, {})
