"""Content-addressed stage outputs: run a stage once per (stage, code version, config, input artifacts).

A stage's key is a hash of its name, the source of the module that computes it, its config and the content
hashes of its inputs. Same key → the committed artifact is reused; change one stage's config → its key changes,
so do the keys of everything downstream (their inputs changed), and nothing upstream recomputes.
"""
from __future__ import annotations

import hashlib
import importlib
import inspect
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

from tasks.store import ArtifactRef, ArtifactStore, StoreSpec
from ray_cluster.connect import RayConfig


class StageContext(BaseModel):
    """What every stage needs besides its inputs and config: where artifacts live, how to reach Ray."""

    model_config = ConfigDict(extra="forbid")
    store: StoreSpec
    ray: RayConfig = RayConfig()
    run_id: str = "adhoc"
    show_progress: bool = True

    def open_store(self) -> ArtifactStore:
        return ArtifactStore(self.store)

    @classmethod
    def for_run(cls, store: StoreSpec, ray: RayConfig, show_progress: bool = True) -> "StageContext":
        """A fresh run's context, after checking the store can be reached (fail at start, not an hour in)."""
        ctx = cls(store=store, ray=ray, run_id=uuid.uuid4().hex[:12], show_progress=show_progress)
        ctx.open_store().check()
        return ctx


def code_version(fn: Callable, extra_modules: tuple[str, ...] = ()) -> str:
    """Hash of the source of the module defining `fn` and of `extra_modules` (the code it delegates to, e.g.
    the labellers a label stage uses): editing that code recomputes the stage."""
    names = [fn.__module__, *sorted(set(extra_modules) - {fn.__module__})]
    source = "\n".join(inspect.getsource(importlib.import_module(name)) for name in names)
    return hashlib.sha256(source.encode()).hexdigest()[:16]


def stage_key(stage: str, version: str, cfg: Any, inputs: dict[str, ArtifactRef]) -> str:
    payload = {
        "stage": stage,
        "code": version,
        "config": _plain(cfg),
        "inputs": {name: ref.content_hash for name, ref in sorted(inputs.items())},
    }
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
    code_modules: tuple[str, ...] = (),
) -> ArtifactRef:
    """Reuse the committed output of this stage, or run `compute(out_dir) -> metrics` and commit it.

    `compute` writes the artifact's files into `out_dir` and returns a dict of metrics (row counts, accuracy,
    ...) that goes into the manifest, so reports can be built from manifests alone. A `resumable` stage is
    called as `compute(out_dir, parts)` and saves finished pieces through `parts` as it goes. `code_modules`
    names further modules whose source is part of the stage's code version.
    """
    store = ctx.open_store()
    version = code_version(compute, code_modules)
    key = stage_key(stage, version, cfg, inputs)
    console = Console(stderr=True)
    found = store.lookup(stage, key)
    if found is not None:
        console.print(f"[green]reused[/] {stage} ({found.short})")
        return found
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
    console.print(f"[green]done[/] {stage} in {manifest['timings']['wall_s']:.1f}s ({ref.short})")
    return ref


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
