"""Content-addressed stage outputs: run a stage once per (stage, code version, config, input artifacts).

A stage's key is a hash of its name, its code version (the sources of every project module the stage's module
imports, transitively, and the versions of the libraries that change results: tasks/core/code_version.py), its
config, the content hashes of its input artifacts and of the files it reads from outside the store. Same key →
the committed artifact is reused; change one stage's config → its key changes, so do the keys of everything
downstream (their inputs changed), and nothing upstream recomputes.
"""
from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, Callable

from pydantic import BaseModel, ConfigDict
from rich.console import Console

from tasks.core.code_version import code_version, import_closure, location_hash
from tasks.core.lease import StageLease
from tasks.core.lineage import record
from tasks.core.store import ArtifactRef, ArtifactStore, StoreSpec
from tasks.core.tracking import TrackingConfig
from ray_cluster.connect import RayConfig


class StageContext(BaseModel):
    """What every stage needs besides its inputs and config: where artifacts live, how to reach Ray."""

    model_config = ConfigDict(extra="forbid")
    store: StoreSpec
    ray: RayConfig = RayConfig()
    run_id: str = "adhoc"
    show_progress: bool = True
    started_at: float = 0.0  # when the run started (epoch seconds)
    # a stage key another live run is computing: wait this long for it (None: as long as it is alive), then refuse
    lease_wait_s: float | None = None
    tracking: TrackingConfig | None = None  # per-step metrics to MLflow too (tasks/core/tracking.py)

    def open_store(self) -> ArtifactStore:
        return ArtifactStore(self.store)

    @classmethod
    def for_run(cls, store: StoreSpec, ray: RayConfig, show_progress: bool = True,
                tracking: TrackingConfig | None = None) -> "StageContext":
        """A fresh run's context, after checking the store can be reached (fail at start, not an hour in)."""
        ctx = cls(store=store, ray=ray, run_id=uuid.uuid4().hex[:12], show_progress=show_progress,
                  started_at=time.time(), tracking=tracking)
        ctx.open_store().check()
        return ctx


def stage_key(stage: str, version: str, cfg: Any, inputs: dict[str, ArtifactRef],
              reads: dict[str, str] | None = None) -> str:
    payload = {
        "stage": stage,
        "code": version,
        "config": _plain(cfg),
        "inputs": {name: ref.content_hash for name, ref in sorted(inputs.items())},
    }
    if reads:  # only when present, so keys of stages that read nothing outside the store stay as they were
        payload["reads"] = dict(sorted(reads.items()))
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:32]


class StageParts:
    """Finished pieces of one (stage, key) kept in the store before the commit, so a rerun after a crash
    (kill -9 of the driver, a lost node) redoes only the pieces that were not finished."""

    def __init__(self, store: ArtifactStore, stage: str, key: str):
        self.store, self.stage, self.key = store, stage, key

    def finished(self) -> dict[str, str]:
        return self.store.list_parts(self.stage, self.key)

    def put(self, name: str, local_file: Path) -> None:
        self.store.put_part(self.stage, self.key, name, local_file)

    def fetch(self, path: str, local_file: Path) -> Path:
        return self.store.get_part(path, local_file)

    def folder(self) -> tuple[str, dict]:
        """URL of this stage's parts folder and the storage options to open it (for workers on other nodes)."""
        return self.store.url_of(self.store.parts_dir(self.stage, self.key)), dict(self.store.spec.storage_options)


def run_stage(
    ctx: StageContext,
    stage: str,
    cfg: Any,
    inputs: dict[str, ArtifactRef],
    compute: Callable[..., dict],
    resumable: bool = False,
    reads: dict[str, str | tuple[str, dict]] | None = None,
) -> ArtifactRef:
    """Reuse the committed output of this stage, or run `compute(out_dir) -> metrics` and commit it.

    `compute` writes the artifact's files into `out_dir` and returns a dict of metrics (row counts, accuracy,
    ...) that goes into the manifest, so reports can be built from manifests alone. A `resumable` stage is
    called as `compute(out_dir, parts)` and saves finished pieces through `parts` as it goes. `reads` names the
    files or folders (path or fsspec URL, or (URL, storage options) when they are not the store's) the stage
    reads from outside the store; their content is in the key.
    """
    store = ctx.open_store()
    closure = import_closure(compute.__module__)
    version = code_version(closure)
    where = {name: (r, store.spec.storage_options) if isinstance(r, str) else r for name, r in (reads or {}).items()}
    read_hashes = {name: location_hash(url, options) for name, (url, options) in where.items()}
    key = stage_key(stage, version, cfg, inputs, read_hashes)
    console = Console(stderr=True)
    found = store.lookup(stage, key)
    if found is not None:
        console.print(f"[green]reused[/] {stage} ({found.short})")
        record(ctx.run_id, found, reused=True)
        return found
    with StageLease(store, stage, key, ctx.run_id, wait_s=ctx.lease_wait_s) as lease:
        if lease.waited_s:  # another run held it: it has probably committed what we were about to compute
            found = store.lookup(stage, key)
            if found is not None:
                console.print(f"[green]reused[/] {stage} ({found.short}) after waiting {lease.waited_s:.0f} s")
                record(ctx.run_id, found, reused=True)
                return found
        ref, manifest = _compute_and_commit(ctx, store, stage, key, cfg, inputs, compute, resumable, closure,
                                            version, where, read_hashes, console)
    console.print(f"[green]done[/] {stage} in {manifest['timings']['wall_s']:.1f}s ({ref.short})")
    record(ctx.run_id, ref, reused=False)
    return ref


def _compute_and_commit(ctx, store, stage, key, cfg, inputs, compute, resumable, closure, version, where,
                        read_hashes, console) -> tuple[ArtifactRef, dict]:
    """The stage's work under its lease: compute into a scratch folder, commit, drop the parts."""
    console.print(f"[cyan]running[/] {stage} ({stage}/{key[:12]})")
    work = Path(tempfile.mkdtemp(prefix=f"winnow-{stage}-"))
    try:
        started = time.time()
        parts = StageParts(store, stage, key)
        metrics = (compute(work, parts) if resumable else compute(work)) or {}
        manifest = {
            "run_id": ctx.run_id,
            "code_version": version,
            "config": _plain(cfg),
            "inputs": {name: ref.model_dump() for name, ref in inputs.items()},
            "reads": {name: {"location": where[name][0], "hash": h} for name, h in read_hashes.items()},
            "code_modules": closure,
            "git_revision": _git_revision(),
            "metrics": metrics,
            "timings": {"wall_s": round(time.time() - started, 3)},
            "created_at": time.time(),
        }
        ref = store.commit(stage, key, work, manifest)
        if resumable:
            store.drop_parts(stage, key)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return ref, manifest


def _plain(cfg: Any) -> Any:
    if isinstance(cfg, BaseModel):
        return cfg.model_dump(mode="json")
    return cfg


def _git_revision() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
            cwd=Path(__file__).resolve().parent,
        )
        if out.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain"], capture_output=True, text=True, timeout=5,
                               cwd=Path(__file__).resolve().parent).stdout.strip()
        return out.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None
