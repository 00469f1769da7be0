"""The nightly evaluate-latest flow on a handful of problems: it finds the newest model of a name in the store
that was trained on these problems (an older one of the same name, a newer one of another name and a newer one
of the same name trained on other data are passed over) and scores it."""
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


def _commit(store: ArtifactStore, key: str, name: str, seed: int, data):
    with tempfile.TemporaryDirectory() as tmp:
        folder = build_model_folder(Path(tmp), seed)
        return store.commit("train_sft", key, folder, {"metrics": {"model_name": name}, "timings": {"wall_s": 0.1},
                                                       "created_at": time.time(),
                                                       "inputs": {"data0:train": data.model_dump()}})


def test_evaluate_latest_scores_the_newest_model_of_its_name(tmp_path, ray_local):
    cfg = load_config(EvaluateLatestConfig, "evaluate_latest", "default", [
        f"store.url={tmp_path / 'store'}", "data.n_train=4", "data.n_test=4", "eval.greedy.engine.backend=hf",
        "eval.greedy.sampling.max_tokens=8"])
    from tasks.core.catalog import latest_model
    from tasks.core.stage_cache import StageContext
    from tasks.data.prepare import make_tiny_arith

    store = ArtifactStore(cfg.store)
    ctx = StageContext(store=cfg.store, show_progress=False)
    problems = make_tiny_arith.fn(cfg.data, ctx)
    other_data = make_tiny_arith.fn(cfg.data.model_copy(update={"seed": 99}), ctx)
    _commit(store, "old", "rft1", 0, problems)
    newest = _commit(store, "new", "rft1", 1, problems)
    _commit(store, "other", "base", 2, problems)
    _commit(store, "elsewhere", "rft1", 3, other_data)  # newer, same name, trained on other problems
    result = evaluate_latest(cfg)
    assert result.outputs["model"] == newest
    with pytest.raises(LookupError, match="were not trained on make_tiny_arith/"):
        latest_model.fn("train_sft", "base", ctx, trained_on=other_data)
    score = store.manifest(result.scores["rft1"]["pass@1"])["metrics"]
    assert score["metric"] == "pass@1" and score["n"] == 4
    assert "| rft1 | pass@1 | 4 |" in (store.local_path(result.report) / "report.md").read_text()
