"""The one report stage: scores, sections contributed by the stages a run used (from its lineage), timings."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from tasks.core.lineage import lineage
from tasks.core.stage_cache import StageContext, run_stage
from tasks.core.store import StoreSpec
from tasks.evaluation import report as report_module
from tasks.evaluation.report import write_report


@pytest.fixture()
def published(monkeypatch):
    """What the report publishes to Prefect (the flow smoke tests check it in a real Prefect API)."""
    calls = []
    monkeypatch.setattr(report_module, "create_table_artifact", lambda **kw: calls.append(("table", kw)))
    monkeypatch.setattr(report_module, "create_markdown_artifact", lambda **kw: calls.append(("markdown", kw)))
    return calls


def _commit(ctx: StageContext, stage: str, metrics: dict, cfg: dict):
    def compute(out: Path) -> dict:
        (out / "x.txt").write_text(json.dumps(cfg))
        return metrics

    return run_stage(ctx, stage, cfg, {}, compute)


def _run(tmp_path, run_id: str):
    ctx = StageContext(store=StoreSpec(url=str(tmp_path / "store")), run_id=run_id, show_progress=False)
    selection = {"samples": 8, "selected": 3, "acceptance_rate": 0.375, "correct_rate": 0.5, "problems": 2,
                 "problems_with_selection": 2, "distinct_paths_mean": 1.5, "distinct_paths_hist": {"1": 1, "2": 1}}
    _commit(ctx, "select_samples", selection, {"round": 1})
    labels = {"rows": 8, "correct": 4, "accuracy": 0.5, "errors": 1, "mean_reward": 0.5}
    _commit(ctx, "label_rewards", labels, {"split": "train"})
    score = _commit(ctx, "score_accuracy", {"metric": "pass@1", "n": 10, "accuracy": 0.3, "ci95": [0.1, 0.6]},
                    {"metric": "pass@1"})
    return ctx, score


def test_report_renders_what_the_run_recorded_and_is_reused_on_a_second_run(tmp_path, published):
    ctx, score = _run(tmp_path, "run-a")
    assert [e.ref.stage for e in lineage("run-a")] == ["select_samples", "label_rewards", "score_accuracy"]
    ref = write_report.fn("rft", "A title", {"base": {"pass@1": score}}, ctx)
    out = Path(ref.uri)
    markdown = (out / "report.md").read_text()
    assert "| base | pass@1 | 10 | 30.0% | [10.0%, 60.0%] |" in markdown
    assert "## Rejection sampling" in markdown and "| 1 | 8 | 50.0% | 3 | 37.5% | 1.50 |" in markdown
    assert "## Labels" in markdown and "| label_rewards | 8 | 4 | 50.0% | 1 | 0.5000 |" in markdown
    assert markdown.index("## Rejection sampling") < markdown.index("## Labels")  # the order stages ran in
    assert (out / "paths.png").read_bytes()[:4] == b"\x89PNG" and (out / "accuracy.png").read_bytes()[:4] == b"\x89PNG"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["flow"] == "rft" and [r["stage"] for r in summary["timing"]] == [
        "select_samples", "label_rewards", "score_accuracy"]
    assert {kind for kind, _ in published} == {"table", "markdown"}
    assert [kw["key"] for kind, kw in published if kind == "markdown"] == ["rft-report"]

    ctx2, score2 = _run(tmp_path, "run-b")  # a second run of the same stages: everything reused
    assert all(e.reused for e in lineage("run-b"))
    assert write_report.fn("rft", "A title", {"base": {"pass@1": score2}}, ctx2) == ref


def test_a_run_without_scores_or_sections_still_reports_its_stages(tmp_path, published):
    ctx = StageContext(store=StoreSpec(url=str(tmp_path / "store")), run_id="bare", show_progress=False)
    _commit(ctx, "make_something", {"rows": 3}, {"n": 3})
    ref = write_report.fn("generate", "Bare", {}, ctx)
    markdown = (Path(ref.uri) / "report.md").read_text()
    assert "Held-out accuracy" not in markdown and "| make_something |" in markdown
    assert not (Path(ref.uri) / "accuracy.png").exists()
    assert [kind for kind, _ in published] == ["markdown"]
