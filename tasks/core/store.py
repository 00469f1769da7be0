"""The artifact store: every dataset, model and report of a run, over fsspec (`file://`, `s3://`, ...).

Layout under the store root::

    artifacts/<stage>/<key>/manifest.json          committed last: the artifact exists iff this exists
    artifacts/<stage>/<key>/data-<attempt>/...      the files, written before the manifest names them
    artifacts/<stage>/<key>/parts/<name>            finished pieces of an unfinished stage (resume after a crash)

An attempt writes into a fresh `data-<attempt>` folder and only then writes the manifest, so a reader (who
trusts only the manifest) never sees a half-written artifact, and a crashed attempt leaves nothing it could
mistake for finished work.
"""
from __future__ import annotations

import hashlib
import json
import os
import time
import uuid
from pathlib import Path
from typing import Any

import fsspec
from pydantic import BaseModel, ConfigDict, Field

from ray_cluster.folders import RemoteFolder, materialize

MANIFEST = "manifest.json"

try:  # S3: an object rewritten between s3fs's HEAD and its GET (a lease renewed, a registry entry updated)
    from s3fs.utils import FileExpired as ChangedWhileReading
except ImportError:  # pragma: no cover - s3fs is a dependency
    class ChangedWhileReading(OSError):
        pass


class KeptChanging(RuntimeError):
    """An object was rewritten every time it was read (`ArtifactStore.read_json` gave up)."""


class StoreSpec(BaseModel):
    """Where the store lives; small and picklable so Ray actors can open the same store."""

    model_config = ConfigDict(extra="forbid")
    url: str = Field(description="store root, e.g. file:///abs/path, /abs/path or s3://bucket/prefix")
    storage_options: dict[str, Any] = Field(default_factory=dict, description="fsspec options (endpoint, keys)")
    cache_dir: str | None = Field(default=None, description="local folder for copies of remote artifacts")


class ArtifactRef(BaseModel):
    """A committed artifact: what flows pass between tasks instead of the data itself."""

    model_config = ConfigDict(frozen=True)
    stage: str
    key: str
    uri: str  # the data folder
    content_hash: str  # hash of the file list and sizes, recorded in the manifest

    @property
    def short(self) -> str:
        return f"{self.stage}/{self.key[:12]}"


class ArtifactStore:
    def __init__(self, spec: StoreSpec):
        self.spec = spec
        url = spec.url if "://" in spec.url else f"file://{os.path.abspath(spec.url)}"
        # A fresh copy: some readers (datasets) mutate the dict they are given.
        self.fs, root = fsspec.core.url_to_fs(url, **dict(spec.storage_options))
        self.root = root.rstrip("/")
        self.protocol = url.split("://", 1)[0]
        self.is_local = self.protocol == "file"
        if self.is_local:
            self.fs.makedirs(self.root, exist_ok=True)

    def check(self) -> None:
        """Fail at start, not after an hour of work, when the store cannot be written."""
        if self.is_local:
            return
        bucket = self.root.split("/", 1)[0]
        try:
            found = self.fs.exists(bucket)
        except Exception as exc:  # endpoint down, bad credentials, ...
            raise ConnectionError(f"store {self.spec.url}: cannot reach the object store: {exc}") from exc
        if not found:
            raise FileNotFoundError(f"store {self.spec.url}: bucket {bucket!r} does not exist "
                                    "(create it, or set store.url to an existing bucket)")

    # ---- addressing -------------------------------------------------------------------------------------
    def url_of(self, path: str) -> str:
        return path if self.is_local else f"{self.protocol}://{path}"

    def _artifact_dir(self, stage: str, key: str) -> str:
        return f"{self.root}/artifacts/{stage}/{key}"

    def data_uri(self, manifest: dict) -> str:
        """The data folder of a committed manifest, found beside the manifest in *this* store: a store copied to
        another folder or bucket (a backup, a test's warm start) reads its own data, not the original's."""
        name = manifest["data_uri"].rstrip("/").rsplit("/", 1)[-1]
        return self.url_of(f"{self._artifact_dir(manifest['stage'], manifest['key'])}/{name}")

    # ---- reading ----------------------------------------------------------------------------------------
    def lookup(self, stage: str, key: str) -> ArtifactRef | None:
        """The committed artifact at (stage, key), or None when none is committed."""
        manifest = self.read_manifest_at(stage, key)
        if manifest is None:
            return None
        return ArtifactRef(stage=stage, key=key, uri=self.data_uri(manifest), content_hash=manifest["content_hash"])

    def read_json(self, path: str, attempts: int = 5) -> dict:
        """The JSON object at `path` (FileNotFoundError when there is none). An object that another process rewrites
        between s3fs's HEAD and GET (a renewed lease, an updated registry entry) is read again."""
        for _ in range(attempts):
            try:
                with self.fs.open(path, "r") as fh:
                    return json.load(fh)
            except ChangedWhileReading:
                self.fs.invalidate_cache(path.rsplit("/", 1)[0])
                time.sleep(0.05)
        raise KeptChanging(f"{path} kept changing while being read")

    def read_manifest_at(self, stage: str, key: str) -> dict | None:
        path = f"{self._artifact_dir(stage, key)}/{MANIFEST}"
        try:
            with self.fs.open(path, "r") as fh:
                return json.load(fh)
        except FileNotFoundError:
            return None

    def manifest(self, ref: ArtifactRef) -> dict:
        found = self.read_manifest_at(ref.stage, ref.key)
        if found is None:
            raise FileNotFoundError(f"artifact {ref.short} has no manifest in store {self.spec.url}")
        return found

    def list(self, stage: str | None = None) -> list[dict]:
        """Every committed manifest (optionally of one stage), oldest first."""
        pattern = f"{self.root}/artifacts/{stage or '*'}/*/{MANIFEST}"
        manifests = []
        for path in self.fs.glob(pattern):
            with self.fs.open(path, "r") as fh:
                manifests.append(json.load(fh))
        return sorted(manifests, key=lambda m: m.get("created_at", 0))

    def folder(self, ref: ArtifactRef) -> RemoteFolder:
        """The artifact's data folder as a record Ray actors and workers can open on any node."""
        return RemoteFolder(uri=ref.uri, storage_options=dict(self.spec.storage_options),
                            content_hash=ref.content_hash, cache_dir=self.spec.cache_dir)

    def local_path(self, ref: ArtifactRef) -> Path:
        """A local folder holding the artifact's files: the folder itself on `file://`, a cached copy otherwise."""
        return materialize(self.folder(ref))

    # ---- writing ----------------------------------------------------------------------------------------
    def commit(self, stage: str, key: str, local_dir: Path, manifest: dict) -> ArtifactRef:
        """Upload `local_dir` as the artifact (stage, key), then write its manifest: the commit point."""
        local_dir = Path(local_dir)
        files = sorted(p for p in local_dir.rglob("*") if p.is_file())
        if not files:
            raise ValueError(f"stage {stage!r} produced no files in {local_dir}; nothing to commit")
        content_hash = _hash_files(local_dir, files)
        data_dir = f"{self._artifact_dir(stage, key)}/data-{uuid.uuid4().hex[:12]}"
        self.fs.makedirs(data_dir, exist_ok=True)
        targets = [f"{data_dir}/{p.relative_to(local_dir).as_posix()}" for p in files]
        if self.is_local:  # object stores have no folders; a local filesystem needs them first
            for parent in {t.rsplit("/", 1)[0] for t in targets}:
                self.fs.makedirs(parent, exist_ok=True)
        self.fs.put([str(p) for p in files], targets)
        full = {
            **manifest,
            "stage": stage,
            "key": key,
            "data_uri": self.url_of(data_dir),
            "content_hash": content_hash,
            "files": [p.relative_to(local_dir).as_posix() for p in files],
        }
        self._write_json_atomic(f"{self._artifact_dir(stage, key)}/{MANIFEST}", full)
        return ArtifactRef(stage=stage, key=key, uri=full["data_uri"], content_hash=content_hash)

    def _write_json_atomic(self, path: str, payload: dict) -> None:
        text = json.dumps(payload, indent=2, sort_keys=True, default=str)
        if self.is_local:
            # rename is atomic on one filesystem: readers see the old state or the whole new file.
            tmp = f"{path}.tmp-{uuid.uuid4().hex[:8]}"
            with open(tmp, "w") as fh:
                fh.write(text)
            os.replace(tmp, path)
        else:
            # An S3 PUT is atomic: the object appears whole or not at all.
            with self.fs.open(path, "w") as fh:
                fh.write(text)

    # ---- parts: the finished pieces of a stage that has not committed yet ------------------------------
    def parts_dir(self, stage: str, key: str) -> str:
        return f"{self._artifact_dir(stage, key)}/parts"

    def put_part(self, stage: str, key: str, name: str, local_file: Path) -> None:
        """Store one finished piece (e.g. a generation shard) atomically: it exists whole or not at all."""
        target = f"{self.parts_dir(stage, key)}/{name}"
        if self.is_local:
            self.fs.makedirs(self.parts_dir(stage, key), exist_ok=True)
            tmp = f"{target}.tmp-{uuid.uuid4().hex[:8]}"
            self.fs.put_file(str(local_file), tmp)
            os.replace(tmp, target)
        else:
            # One PUT (or one completed multipart upload): S3 never shows a partial object.
            self.fs.put_file(str(local_file), target)

    def list_parts(self, stage: str, key: str) -> dict[str, str]:
        """Finished parts of (stage, key) by name → path (temporary files of interrupted writes excluded)."""
        self.fs.invalidate_cache(self.parts_dir(stage, key))  # s3fs caches listings; another process wrote
        try:
            paths = self.fs.ls(self.parts_dir(stage, key), detail=False)
        except FileNotFoundError:
            return {}
        found = {p.rsplit("/", 1)[-1]: p for p in paths}
        return {name: path for name, path in found.items() if ".tmp-" not in name}

    def get_part(self, path: str, local_file: Path) -> Path:
        self.fs.get_file(path, str(local_file))
        return local_file

    def drop_parts(self, stage: str, key: str) -> None:
        """After the commit the parts are duplicates of the artifact's data; remove them."""
        try:
            self.fs.rm(self.parts_dir(stage, key), recursive=True)
        except FileNotFoundError:
            pass
        self.fs.invalidate_cache()

    def write_text(self, relpath: str, text: str) -> str:
        """A plain file outside the artifact tree (e.g. `runs/<id>/report.md` pointers); returns its URL."""
        path = f"{self.root}/{relpath}"
        self.fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
        with self.fs.open(path, "w") as fh:
            fh.write(text)
        return self.url_of(path)

    def read_text(self, relpath: str) -> str:
        with self.fs.open(f"{self.root}/{relpath}", "r") as fh:
            return fh.read()


def _hash_files(root: Path, files: list[Path]) -> str:
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.relative_to(root).as_posix().encode())
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()
