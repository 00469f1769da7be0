"""Keeping a store honest (issue 14): `verify` re-hashes every committed artifact against its manifest (a
truncated or corrupted file is found, and optionally quarantined so the next run recomputes it instead of
trusting it forever); `gc` removes what no manifest names — the data folders of crashed or superseded attempts
and the parts of stages that have since committed — after a grace period, so work still in progress is kept.

Both walk `artifacts/<stage>/<key>/` (tasks/core/store.py) on any fsspec store, local or S3."""
from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field

from tasks.core.store import MANIFEST, ArtifactStore

QUARANTINE_PREFIX = "manifest.quarantined-"


@dataclass
class Finding:
    stage: str
    key: str
    problem: str  # "" when the artifact verified
    quarantined: bool = False


@dataclass
class Garbage:
    paths: list[str] = field(default_factory=list)
    bytes: int = 0
    kept_young: int = 0  # candidates left because they are younger than the grace period


def content_hash(store: ArtifactStore, data_dir: str, files: list[str]) -> str:
    """The hash `ArtifactStore.commit` computed: each file's relative path, then its bytes, in manifest order."""
    digest = hashlib.sha256()
    for rel in files:
        digest.update(rel.encode())
        with store.fs.open(f"{data_dir}/{rel}", "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def _artifact_dirs(store: ArtifactStore, stage: str | None) -> list[tuple[str, str, str]]:
    """(stage, key, folder) of every artifact folder, committed or not."""
    store.fs.invalidate_cache()
    found = []
    for path in store.fs.glob(f"{store.root}/artifacts/{stage or '*'}/*"):
        stage_name, key = path.rstrip("/").split("/")[-2:]
        if store.fs.isdir(path):
            found.append((stage_name, key, path.rstrip("/")))
    return sorted(found)


def _data_dir(store: ArtifactStore, manifest: dict) -> str:
    uri = store.data_uri(manifest)
    return uri.split("://", 1)[-1] if not store.is_local else uri


def verify(store: ArtifactStore, stage: str | None = None, quarantine: bool = False) -> list[Finding]:
    """Every committed artifact re-hashed against its manifest. A bad one is reported, and with `quarantine`
    its manifest is set aside (`manifest.quarantined-<time>.json`): the artifact stops existing for lookups, so
    the next run recomputes it, and its files stay for inspection."""
    findings = []
    for stage_name, key, folder in _artifact_dirs(store, stage):
        path = f"{folder}/{MANIFEST}"
        if not store.fs.exists(path):
            continue  # never committed: gc's business
        problem = _check(store, path)
        finding = Finding(stage_name, key, problem)
        if problem and quarantine:
            store.fs.mv(path, f"{folder}/{QUARANTINE_PREFIX}{int(time.time())}.json")
            finding.quarantined = True
        findings.append(finding)
    return findings


def _check(store: ArtifactStore, manifest_path: str) -> str:
    try:
        with store.fs.open(manifest_path, "r") as fh:
            manifest = json.load(fh)
        data_dir, files = _data_dir(store, manifest), list(manifest["files"])
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        return f"manifest unreadable ({type(exc).__name__}: {exc})"
    missing = [rel for rel in files if not store.fs.exists(f"{data_dir}/{rel}")]
    if missing:
        return f"{len(missing)} file(s) missing, e.g. {missing[0]}"
    actual = content_hash(store, data_dir, files)
    if actual != manifest.get("content_hash"):
        return f"content hash {actual[:12]} != manifest {str(manifest.get('content_hash'))[:12]} (changed or truncated)"
    return ""


def collect_garbage(store: ArtifactStore, dry_run: bool = True, grace_s: float = 3600.0,
                    stage: str | None = None) -> Garbage:
    """Data folders no manifest names (crashed or superseded attempts) and the parts of committed stages, older
    than `grace_s` (an attempt still running keeps writing, so its newest file stays young). With `dry_run`
    nothing is removed; the result lists what would be."""
    garbage, now = Garbage(), time.time()
    for _, _, folder in _artifact_dirs(store, stage):
        committed = None
        if store.fs.exists(f"{folder}/{MANIFEST}"):
            with store.fs.open(f"{folder}/{MANIFEST}", "r") as fh:
                committed = _data_dir(store, json.load(fh)).rstrip("/")
        for entry in store.fs.ls(folder, detail=False):
            name = entry.rstrip("/").rsplit("/", 1)[-1]
            orphan = name.startswith("data-") and entry.rstrip("/") != committed
            stale_parts = name == "parts" and committed is not None
            if not (orphan or stale_parts):
                continue
            size, newest = _size_and_newest(store, entry)
            if now - newest < grace_s:
                garbage.kept_young += 1
                continue
            garbage.paths.append(store.url_of(entry))
            garbage.bytes += size
            if not dry_run:
                store.fs.rm(entry, recursive=True)
    store.fs.invalidate_cache()
    return garbage


def _size_and_newest(store: ArtifactStore, path: str) -> tuple[int, float]:
    """Total bytes under `path` and the newest modification time (epoch seconds) of anything in it."""
    size, newest = 0, 0.0
    for info in store.fs.find(path, detail=True, withdirs=False).values():
        size += int(info.get("size") or 0)
        newest = max(newest, _mtime(info))
    return size, newest


def _mtime(info: dict) -> float:
    # local: `mtime` (epoch float); s3fs: `LastModified` (datetime)
    if "mtime" in info:
        return float(info["mtime"])
    stamp = info.get("LastModified") or info.get("last_modified")
    return stamp.timestamp() if hasattr(stamp, "timestamp") else time.time()
