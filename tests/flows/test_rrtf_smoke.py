"""The RRTF flow on a few tiny-code problems: sampled programs are unit-tested in the sandbox, ranked, and a
model is trained with the ranking loss and evaluated before and after."""
from __future__ import annotations

import pytest

from flows.config import load_config
from flows.rrtf import RRTFConfig, rrtf
from tasks.core.store import ArtifactStore
from tasks.core.tables import read_rows

pytestmark = pytest.mark.slow


def test_rrtf_flow_end_to_end(tmp_path, ray_local):
    cfg = load_config(RRTFConfig, "rrtf", "smoke", [f"store.url={tmp_path / 'store'}"])
    result = rrtf(cfg)
    store = ArtifactStore(cfg.store)
    tested = store.lookup("label_rewards", next(m["key"] for m in store.list("label_rewards")
                                                if m["metrics"]["rows"] == 24 * 4))
    statuses = {r["status"] for r in read_rows(store, tested, "labels")}
    assert statuses <= {"pass", "fail", "error", "timeout"} and statuses - {"pass"}
    groups = read_rows(store, store.lookup("make_preferences", store.list("make_preferences")[-1]["key"]),
                       "groups_train")
    assert groups and all(g["scores"] == sorted(g["scores"], reverse=True) for g in groups)
    history = read_rows(store, result.outputs["model"], "metrics")
    assert len(history) == 6 and history[-1]["loss"] < history[0]["loss"]
    assert set(result.scores) == {"base", "rrtf"} and "pass@1" in result.scores["rrtf"]
    report = (store.local_path(result.report) / "report.md").read_text()
    assert "| base | pass@1 | 8 |" in report and "| rrtf | pass@1 | 8 |" in report
    assert (store.local_path(result.report) / "train-rrtf-rrtf-loss.png").read_bytes()[:4] == b"\x89PNG"


def test_humaneval_config_is_valid():
    cfg = load_config(RRTFConfig, "rrtf", "humaneval")
    assert cfg.dataset.answer_format == "tests" and cfg.model.gguf is not None and cfg.label.labellers[0].name == "unit_tests"
