"""Datasets in the store are Parquet files (readable by `datasets.load_dataset("parquet", ...)`, pandas, pyarrow)."""
from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from tasks.core.store import ArtifactRef, ArtifactStore


def write_rows(path: Path, rows: list[dict], schema: pa.Schema | None = None) -> int:
    """Write rows as one Parquet file; an empty list still writes a file with the given schema."""
    path.parent.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pylist(rows, schema=schema) if rows or schema is None else schema.empty_table()
    pq.write_table(table, path)
    return table.num_rows


def read_rows(store: ArtifactStore, ref: ArtifactRef, name: str) -> list[dict]:
    """Rows of `<name>.parquet` inside an artifact."""
    path = store.local_path(ref) / f"{name}.parquet"
    if not path.exists():
        raise FileNotFoundError(f"artifact {ref.short} has no table {name!r} (looked for {path})")
    return pq.read_table(path).to_pylist()
