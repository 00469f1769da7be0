"""Reuse and invalidation of stage outputs: same inputs reuse, changed config recomputes it and what follows."""
from __future__ import annotations

import time
from pathlib import Path

from tasks.core.stage_cache import StageContext, run_stage, stage_key
from tasks.core.store import ArtifactRef


def _pipeline(ctx: StageContext, calls: list[str], first_cfg: dict, second_cfg: dict) -> tuple[ArtifactRef, ...]:
    def first(out: Path) -> dict:
        calls.append("first")
        (out / "v.txt").write_text(str(first_cfg["value"]))
        return {"value": first_cfg["value"]}

    def second(out: Path) -> dict:
        calls.append("second")
        upstream = ctx.open_store().local_path(a) / "v.txt"
        (out / "v.txt").write_text(upstream.read_text() + "+" + str(second_cfg["add"]))
        return {}

    a = run_stage(ctx, "first", first_cfg, {}, first)
    b = run_stage(ctx, "second", second_cfg, {"a": a}, second)
    return a, b


def test_same_config_reuses_every_stage(store_spec):
    ctx = StageContext(store=store_spec, show_progress=False)
    calls: list[str] = []
    refs = _pipeline(ctx, calls, {"value": 1}, {"add": 2})
    again = _pipeline(ctx, calls, {"value": 1}, {"add": 2})
    assert calls == ["first", "second"]
    assert refs == again


def test_downstream_config_change_recomputes_only_downstream(store_spec):
    ctx = StageContext(store=store_spec, show_progress=False)
    calls: list[str] = []
    a1, b1 = _pipeline(ctx, calls, {"value": 1}, {"add": 2})
    a2, b2 = _pipeline(ctx, calls, {"value": 1}, {"add": 3})
    assert calls == ["first", "second", "second"]
    assert a1 == a2 and b1 != b2


def test_upstream_config_change_recomputes_downstream(store_spec):
    ctx = StageContext(store=store_spec, show_progress=False)
    calls: list[str] = []
    _, b1 = _pipeline(ctx, calls, {"value": 1}, {"add": 2})
    _, b2 = _pipeline(ctx, calls, {"value": 5}, {"add": 2})
    assert calls == ["first", "second", "first", "second"]
    assert (ctx.open_store().local_path(b2) / "v.txt").read_text() == "5+2"
    assert b1 != b2


def test_manifest_records_inputs_config_and_timing(store_spec):
    ctx = StageContext(store=store_spec, show_progress=False, run_id="r1")
    started = time.time()
    _, b = _pipeline(ctx, [], {"value": 1}, {"add": 2})
    elapsed = time.time() - started
    manifest = ctx.open_store().manifest(b)
    assert manifest["config"] == {"add": 2}
    assert manifest["inputs"]["a"]["stage"] == "first"
    assert manifest["run_id"] == "r1"
    assert started <= manifest["created_at"] <= started + elapsed and manifest["timings"]["wall_s"] <= elapsed
    assert "code_version" in manifest and "git_revision" in manifest


def test_key_depends_on_input_content_not_on_names_of_dicts_order():
    ref1 = ArtifactRef(stage="s", key="k", uri="/x", content_hash="h1")
    ref2 = ArtifactRef(stage="s", key="k", uri="/x", content_hash="h2")
    assert stage_key("s", "v", {"a": 1, "b": 2}, {"x": ref1}) == stage_key("s", "v", {"b": 2, "a": 1}, {"x": ref1})
    assert stage_key("s", "v", {}, {"x": ref1}) != stage_key("s", "v", {}, {"x": ref2})
    assert stage_key("s", "v1", {}, {}) != stage_key("s", "v2", {}, {})


def test_failed_stage_commits_nothing(store_spec):
    ctx = StageContext(store=store_spec, show_progress=False)

    def broken(out: Path) -> dict:
        (out / "partial.txt").write_text("half")
        raise RuntimeError("boom")

    import pytest

    with pytest.raises(RuntimeError, match="boom"):
        run_stage(ctx, "broken", {}, {}, broken)
    assert ctx.open_store().list("broken") == []
