"""The nightly evaluate-latest flow on a handful of problems: it finds the newest model of a name in the store
(an older one of the same name and a newer one of another name are passed over) and scores it."""
from __future__ import annotations

import tempfile
import time
from pathlib import Path

import pytest

from flows.config import load_config
from flows.evaluate_latest import EvaluateLatestConfig, evaluate_latest
from generation_assets import build_model_folder
from tasks.core.store import ArtifactStore

pytestmark = pytest.mark.slow


def _commit(store: ArtifactStore, key: str, name: str, seed: int):
    with tempfile.TemporaryDirectory() as tmp:
        folder = build_model_folder(Path(tmp), seed)
        return store.commit("train_sft", key, folder, {"metrics": {"model_name": name}, "timings": {"wall_s": 0.1},
                                                       "created_at": time.time()})


def test_evaluate_latest_scores_the_newest_model_of_its_name(tmp_path, ray_local):
    cfg = load_config(EvaluateLatestConfig, "evaluate_latest", "default", [
        f"store.url={tmp_path / 'store'}", "data.n_train=4", "data.n_test=4", "eval.greedy.engine.backend=hf",
        "eval.greedy.sampling.max_tokens=8"])
    store = ArtifactStore(cfg.store)
    _commit(store, "old", "rft1", 0)
    newest = _commit(store, "new", "rft1", 1)
    _commit(store, "other", "base", 2)
    result = evaluate_latest(cfg)
    assert result.outputs["model"] == newest
    score = store.manifest(result.scores["rft1"]["pass@1"])["metrics"]
    assert score["metric"] == "pass@1" and score["n"] == 4
    assert "| rft1 | pass@1 | 4 |" in (store.local_path(result.report) / "report.md").read_text()
