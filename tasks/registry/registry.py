"""The model registry (issue 18): named models with versions, in the store beside the artifacts they point at.

    registry/<name>/v0001.json     one entry per version: the artifact, its lineage, evaluations, status
    registry/<name>/lease.json     held while an entry is written (two runs registering at once get v1 and v2)

Store-native rather than MLflow's model registry: every model already is a content-addressed artifact whose
manifest records its inputs, config, code version and run, on whatever fsspec store the platform uses (S3 here);
MLflow's registry would need its own database reachable from every Ray worker and scheduled run, and a second copy
of each model. docs/registry.md has the full comparison. A model's status is one of candidate / champion /
retired / rejected; at most one version of a name is the champion.
"""
from __future__ import annotations

import re
import time
from typing import Literal

from pydantic import BaseModel, Field

from tasks.core.lease import StageLease
from tasks.core.store import ArtifactRef, ArtifactStore

Status = Literal["candidate", "champion", "retired", "rejected"]


class Evaluation(BaseModel):
    """One held-out score of the model: the score artifact it came from, so the per-problem results can be
    paired against another model's on the same problems (the promotion gate)."""

    metric: str
    accuracy: float
    n: int
    ci95: list[float]
    problems: str = Field(description="the held-out problems' artifact (stage/key) these scores are over")
    score: ArtifactRef


class ModelEntry(BaseModel):
    name: str
    version: int
    artifact: ArtifactRef
    status: Status = "candidate"
    parent: int | None = Field(default=None, description="the version this one was trained from")
    run_id: str | None = Field(default=None, description="the flow run that registered it")
    flow: str | None = None
    lineage: dict = Field(default_factory=dict, description="stage, config, code version and git revision of the "
                          "artifact, and the datasets among its ancestors (from the manifests)")
    evaluations: list[Evaluation] = Field(default_factory=list)
    decision: dict | None = Field(default=None, description="the promotion gate's verdict, p-value and effect")
    created_at: float = Field(default_factory=time.time)
    history: list[dict] = Field(default_factory=list, description="status changes: {status, at, reason}")


DATASET_STAGES = ("make_tiny_arith", "make_tiny_code", "load_dataset", "build_tokenizer")


class ModelRegistry:
    def __init__(self, store: ArtifactStore):
        self.store = store
        self.root = f"{store.root}/registry"

    # ---- reading ---------------------------------------------------------------------------------------
    def names(self) -> list[str]:
        try:
            self.store.fs.invalidate_cache(self.root)
            return sorted(p.rsplit("/", 1)[-1] for p in self.store.fs.ls(self.root, detail=False)
                          if self.store.fs.isdir(p))
        except FileNotFoundError:
            return []

    def versions(self, name: str) -> list[ModelEntry]:
        folder = f"{self.root}/{name}"
        self.store.fs.invalidate_cache(folder)
        try:
            paths = sorted(p for p in self.store.fs.ls(folder, detail=False)
                           if re.fullmatch(r"v\d{4,}\.json", p.rsplit("/", 1)[-1]))
        except FileNotFoundError:
            return []
        return [ModelEntry.model_validate(self.store.read_json(path)) for path in paths]

    def get(self, name: str, version: int | None = None) -> ModelEntry:
        """A version, or the champion when `version` is None."""
        entries = self.versions(name)
        found = [e for e in entries if (e.version == version if version is not None else e.status == "champion")]
        if not found:
            what = f"version {version}" if version is not None else "champion"
            raise LookupError(f"model {name!r} has no {what} in {self.store.spec.url} (versions: "
                              f"{[e.version for e in entries]})")
        return found[0]

    def champion(self, name: str) -> ModelEntry | None:
        return next((e for e in self.versions(name) if e.status == "champion"), None)

    # ---- writing (under the name's lease) --------------------------------------------------------------
    def register(self, name: str, artifact: ArtifactRef, run_id: str | None = None, flow: str | None = None,
                 parent: int | None = None) -> ModelEntry:
        """A new candidate version of `name` for this artifact; the existing entry when the artifact already is
        one (a rerun that reused the stage registers nothing twice)."""
        with self._locked(name, run_id):
            entries = self.versions(name)
            same = [e for e in entries if e.artifact.key == artifact.key and e.artifact.stage == artifact.stage]
            if same:
                return same[0]
            entry = ModelEntry(name=name, version=max((e.version for e in entries), default=0) + 1,
                               artifact=artifact, run_id=run_id, flow=flow, parent=parent,
                               lineage=self._lineage(artifact),
                               history=[{"status": "candidate", "at": time.time(), "reason": "registered"}])
            self._write(entry)
            return entry

    def add_evaluation(self, name: str, version: int, evaluation: Evaluation) -> ModelEntry:
        def change(entry: ModelEntry) -> None:
            kept = [e for e in entry.evaluations if (e.metric, e.problems) != (evaluation.metric, evaluation.problems)]
            entry.evaluations = kept + [evaluation]
        return self._update(name, version, change)

    def decide(self, name: str, version: int, promote: bool, decision: dict, run_id: str | None = None
               ) -> ModelEntry:
        """Record the gate's decision: promote (the old champion is retired) or reject, with the reason."""
        with self._locked(name, run_id):
            now, reason = time.time(), decision.get("reason", "")
            entries = {e.version: e for e in self.versions(name)}
            entry = entries[version]
            if promote:
                for other in entries.values():
                    if other.status == "champion" and other.version != version:
                        other.status = "retired"
                        other.history.append({"status": "retired", "at": now, "reason": f"replaced by v{version}"})
                        self._write(other)
            entry.status, entry.decision = ("champion" if promote else "rejected"), decision
            entry.history.append({"status": entry.status, "at": now, "reason": reason})
            self._write(entry)
            return entry

    def promote(self, name: str, version: int, reason: str, run_id: str | None = None) -> ModelEntry:
        """A person's decision (`winnow models promote`): no gate, the reason recorded."""
        return self.decide(name, version, True, {"reason": reason, "manual": True}, run_id)

    def _update(self, name: str, version: int, change) -> ModelEntry:
        with self._locked(name, None):
            entry = self.get(name, version)
            change(entry)
            self._write(entry)
            return entry

    def _locked(self, name: str, run_id: str | None) -> StageLease:
        # short critical sections: poll fast, and a crashed holder's lease expires within a minute
        return StageLease(self.store, "registry", name, run_id or "registry", ttl_s=60, poll_s=0.2,
                          path=f"{self.root}/{name}/lease.json")

    def _write(self, entry: ModelEntry) -> None:
        self.store.fs.makedirs(f"{self.root}/{entry.name}", exist_ok=True)
        self.store._write_json_atomic(f"{self.root}/{entry.name}/v{entry.version:04d}.json",
                                      entry.model_dump(mode="json"))

    def _lineage(self, artifact: ArtifactRef) -> dict:
        from tasks.core.catalog import ancestors

        manifest = self.store.manifest(artifact)
        datasets = sorted(f"{stage}/{key}" for stage, key in ancestors(self.store, artifact.stage, artifact.key)
                          if stage in DATASET_STAGES)
        return {"stage": artifact.stage, "config": manifest.get("config"), "code_version": manifest.get(
            "code_version"), "git_revision": manifest.get("git_revision"), "trained_in_run": manifest.get("run_id"),
            "datasets": datasets}
