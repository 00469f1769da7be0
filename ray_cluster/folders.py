"""Model/data folders that live in object storage, made local where an actor or worker runs."""
from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Any

import fsspec
from pydantic import BaseModel, ConfigDict, Field


class RemoteFolder(BaseModel):
    """A folder by URI (file path, file://, s3://...) plus what fsspec needs to open it."""

    model_config = ConfigDict(frozen=True)
    uri: str
    storage_options: dict[str, Any] = Field(default_factory=dict)
    content_hash: str = ""
    cache_dir: str | None = None


def materialize(folder: RemoteFolder) -> Path:
    """A local path with the folder's files: the folder itself when local, else a cached download.

    The download lands in a uniquely named folder and is renamed into place when complete, so concurrent
    actors on one node never read a half-copied model.
    """
    if "://" not in folder.uri or folder.uri.startswith("file://"):
        return Path(folder.uri.removeprefix("file://"))
    cache = Path(folder.cache_dir or os.path.join(tempfile.gettempdir(), "winnow-cache"))
    tag = folder.content_hash[:16] or uuid.uuid5(uuid.NAMESPACE_URL, folder.uri).hex[:16]
    target = cache / tag
    if (target / ".complete").exists():
        return target
    fs, path = fsspec.core.url_to_fs(folder.uri, **dict(folder.storage_options))
    partial = cache / f"{tag}.partial-{uuid.uuid4().hex[:8]}"
    partial.mkdir(parents=True)
    for remote in fs.find(path):
        local = partial / os.path.relpath(remote, path)
        local.parent.mkdir(parents=True, exist_ok=True)
        fs.get_file(remote, str(local))
    (partial / ".complete").touch()
    try:
        partial.rename(target)
    except OSError:  # another process finished first: use its copy
        shutil.rmtree(partial, ignore_errors=True)
    return target
