"""Datasets in the store are Parquet files (readable by `datasets.load_dataset("parquet", ...)`, pandas, pyarrow)."""
from __future__ import annotations

from pathlib import Path
from typing import Protocol

import pyarrow as pa
import pyarrow.parquet as pq

from tasks.core.store import ArtifactRef, ArtifactStore


class TableSchema(Protocol):
    """What `write_records` needs of a schema (tasks/core/records.py `RecordSchema`). Named structurally so
    this module does not import the records: every stage imports it, and a stage's cache key follows its
    imports (tasks/core/code_version.py); training and evaluation write no typed records."""

    kind: str

    def to_table(self, rows: list[dict], table: str) -> pa.Table: ...


def write_rows(path: Path, rows: list[dict], schema: pa.Schema | None = None) -> int:
    """Write rows as one Parquet file; an empty list still writes a file with the given schema."""
    path.parent.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pylist(rows, schema=schema) if rows or schema is None else schema.empty_table()
    pq.write_table(table, path)
    return table.num_rows


def write_records(path: Path, rows: list[dict], schema: TableSchema) -> int:
    """Write rows as one Parquet file after checking each against `schema` (tasks/core/records.py).

    A missing, mistyped or undeclared field raises `RecordError` naming the file, the row and the field, and
    nothing is written: tables passed between stages are checked where they are made (issue 12, item 3).
    """
    table = schema.to_table(rows, f"{path.name} ({schema.kind})")
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)
    return table.num_rows


def read_rows(store: ArtifactStore, ref: ArtifactRef, name: str) -> list[dict]:
    """Rows of `<name>.parquet` inside an artifact."""
    path = store.local_path(ref) / f"{name}.parquet"
    if not path.exists():
        raise FileNotFoundError(f"artifact {ref.short} has no table {name!r} (looked for {path})")
    return pq.read_table(path).to_pylist()
