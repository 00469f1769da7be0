"""The model registry on a local folder and on S3: versions, idempotent registration, promotion retiring the old
champion, concurrent registrations getting distinct versions, and lineage read from the manifests."""
from __future__ import annotations

import threading

import pytest

from tasks.core.lineage_graph import lineage_graph, render_png, render_text
from tasks.core.stage_cache import StageContext, run_stage
from tasks.core.store import ArtifactStore
from tasks.registry.registry import ModelRegistry


def _artifact(ctx: StageContext, stage: str, tag: str, inputs: dict | None = None, **metrics):
    def compute(out):
        (out / "weights.txt").write_text(tag)
        return metrics
    return run_stage(ctx, stage, {"tag": tag}, inputs or {}, compute)


@pytest.fixture()
def models(store_spec):
    """data → base → two fine-tunes, as stages with manifests (what the registry reads lineage from)."""
    ctx = StageContext(store=store_spec, show_progress=False, run_id="r1")
    data = _artifact(ctx, "make_tiny_arith", "data", rows=10)
    base = _artifact(ctx, "train_sft", "base", {"data0:train": data}, model_name="base")
    tuned = [_artifact(ctx, "train_sft", f"tuned{i}", {"data0:train": data, "init": base}, model_name=f"t{i}")
             for i in range(2)]
    return ctx, data, base, tuned


def test_versions_lineage_and_idempotent_registration(models):
    ctx, data, base, tuned = models
    registry = ModelRegistry(ctx.open_store())
    first = registry.register("policy", base, run_id="r1", flow="test")
    again = registry.register("policy", base, run_id="r2", flow="test")  # a rerun that reused the stage
    second = registry.register("policy", tuned[0], run_id="r1", parent=first.version)
    assert (first.version, again.version, second.version) == (1, 1, 2)
    assert [e.version for e in registry.versions("policy")] == [1, 2] and registry.names() == ["policy"]
    assert second.lineage["datasets"] == [f"make_tiny_arith/{data.key}"] and second.parent == 1
    assert second.lineage["trained_in_run"] == "r1" and second.status == "candidate"
    with pytest.raises(LookupError, match="no champion"):
        registry.get("policy")


def test_promotion_retires_the_old_champion_and_rejection_keeps_it(models):
    ctx, _, base, tuned = models
    registry = ModelRegistry(ctx.open_store())
    v1 = registry.register("policy", base)
    registry.decide("policy", v1.version, True, {"reason": "first"})
    v2 = registry.register("policy", tuned[0], parent=1)
    registry.decide("policy", v2.version, False, {"reason": "worse", "p_value": 0.01})
    assert registry.champion("policy").version == 1 and registry.get("policy", 2).status == "rejected"
    v3 = registry.register("policy", tuned[1], parent=1)
    registry.decide("policy", v3.version, True, {"reason": "better", "p_value": 0.001})
    statuses = {e.version: e.status for e in registry.versions("policy")}
    assert statuses == {1: "retired", 2: "rejected", 3: "champion"}
    assert [h["status"] for h in registry.get("policy", 1).history] == ["candidate", "champion", "retired"]
    assert registry.get("policy", 2).decision["p_value"] == 0.01


def test_concurrent_registrations_get_distinct_versions(store_spec):
    ctx = StageContext(store=store_spec, show_progress=False, run_id="r")
    refs = [_artifact(ctx, "train_sft", f"m{i}", model_name=f"m{i}") for i in range(6)]
    store = ArtifactStore(store_spec)
    got, errors = [], []

    def register(ref):
        try:
            got.append(ModelRegistry(store).register("shared", ref).version)  # one registry object per "run"
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=register, args=(ref,)) for ref in refs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors and sorted(got) == [1, 2, 3, 4, 5, 6]
    entries = ModelRegistry(store).versions("shared")
    assert sorted(e.artifact.key for e in entries) == sorted(r.key for r in refs)  # none lost, none twice


def test_lineage_graph_of_a_fine_tune(models, tmp_path):
    ctx, data, base, tuned = models
    graph = lineage_graph(ctx.open_store(), tuned[0].stage, tuned[0].key)
    nodes = {(n.stage, n.key) for n in graph.nodes.values()}
    assert nodes == {(r.stage, r.key) for r in (data, base, tuned[0])}
    assert ((base.stage, base.key), (tuned[0].stage, tuned[0].key), "init") in graph.edges
    assert graph.nodes[(data.stage, data.key)].depth == 2  # through the base, not only directly
    text = render_text(graph)
    assert text[0].startswith(f"train_sft/{tuned[0].key[:12]}") and any("init: train_sft/" in t for t in text)
    assert sum("make_tiny_arith" in t for t in text) == 2 and sum("[above]" in t for t in text) == 1
    render_png(graph, tmp_path / "g.png")
    assert (tmp_path / "g.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
