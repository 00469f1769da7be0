"""The Evol-Instruct flow end to end on 3 seeds with a tiny random teacher: the mechanics, not the quality. One
seed is longer than the teacher's context, so every evolution prompt made from it is an error row with no text:
each of its rewrites, in every round, must be eliminated by `too_short`, and the seed must stay in the pool."""
from __future__ import annotations

import json

import pytest

from flows.config import load_config
from flows.evol_instruct import EvolInstructConfig, evol_instruct
from generation_assets import TINY, build_model_folder
from tasks.core.store import ArtifactStore
from tasks.core.tables import read_rows
from tasks.instructions.elimination import FILTERS
from tasks.instructions.evolve import candidate_id

pytestmark = pytest.mark.slow


def _seed_files(tmp_path) -> dict:
    overlong = "How many is " + " + ".join(["7"] * 700) + "?"  # > 1024 tokens: past the teacher's context
    train = [{"id": "overlong", "question": overlong, "answer": "#### 4900"},
             {"id": "pens", "question": "Sam has 3 pens and buys 4 more. How many pens does he have?",
              "answer": "3+4=7\n#### 7"},
             {"id": "cakes", "question": "A baker makes 5 cakes a day for 6 days. How many cakes is that?",
              "answer": "5*6=30\n#### 30"}]
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in train))
    (tmp_path / "test.jsonl").write_text(json.dumps({"id": "t", "question": "What is 2+2?", "answer": "#### 4"}))
    return {"name": "seeds", "format": "json", "train": [str(tmp_path / "train.jsonl")],
            "test": [str(tmp_path / "test.jsonl")], "columns": {"id": "id", "question": "question",
                                                                "solution": "answer"}}


def test_evol_instruct_two_rounds_lineage_and_filters(tmp_path, ray_local):
    teacher = build_model_folder(tmp_path / "teacher", size=TINY.model_copy(update={"max_positions": 1024}))
    dataset = _seed_files(tmp_path)
    cfg = load_config(EvolInstructConfig, "evol_instruct", "smoke", [
        f"store.url={tmp_path / 'store'}", f"teacher={json.dumps({'path': str(teacher)})}",
        f"dataset={json.dumps(dataset)}"])
    result = evol_instruct(cfg)
    store = ArtifactStore(cfg.store)
    kept = read_rows(store, result.outputs["dataset"], "train")
    eliminated = read_rows(store, result.outputs["dataset"], "eliminated")
    seeds = {"overlong", "pens", "cakes"}

    # every candidate of every round is accounted for, once: kept or eliminated with a registered filter
    prompts = {m["key"]: m for m in store.list("evolution_prompts")}
    assert sum(m["metrics"]["prompts"] for m in prompts.values()) == len(kept) + len(eliminated)
    assert len({r["id"] for r in kept + eliminated}) == len(kept) + len(eliminated)
    assert eliminated and all(e["reason"] in FILTERS for e in eliminated)

    # lineage: each row's id is its parent's id + round + operation; parents are seeds or kept rows of the round
    # before; the source is the seed at the root of the chain
    assert kept and all(k["answer"] and k["completion"] == k["answer"] for k in kept)
    by_id = {r["id"]: r for r in kept}
    for row in kept + eliminated:
        assert row["id"] == candidate_id(row["parent_id"], row["round"], row["operation"])
        assert row["round"] in (1, 2) and row["source_id"] in seeds
        parent = by_id.get(row["parent_id"])
        if parent is None:
            assert row["parent_id"] in seeds and row["source_id"] == row["parent_id"]
        else:
            assert parent["round"] == row["round"] - 1 and parent["source_id"] == row["source_id"]

    # the constructed case: the overlong seed's rewrites (both operations, both rounds) are empty and too short
    from_overlong = [r for r in kept + eliminated if r["parent_id"] == "overlong"]
    assert {(r["round"], r["operation"]) for r in from_overlong} == {(1, "add_constraints"), (1, "easier"),
                                                                     (2, "add_constraints"), (2, "easier")}
    assert all(r in eliminated and r["reason"] == "too_short" and r["question"] == "" for r in from_overlong)
    errors = [s for m in store.list("sample_completions") if m["config"]["sampling"]["max_tokens"] == 12
              for s in read_rows(store, store.lookup("sample_completions", m["key"]), "samples")
              if s["prompt_id"].startswith("overlong~")]
    assert len(errors) == 4 and all(s["finish_reason"] == "error" for s in errors)

    report = (store.local_path(result.report) / "report.md").read_text()
    assert f"## Evol-Instruct: {len(kept)} kept, {len(eliminated)} eliminated" in report
    ups = [r for r in kept + eliminated if r["operation"] == "add_constraints"]
    assert f"| add_constraints | {sum(r in kept for r in ups)} | {sum(r in eliminated for r in ups)} |" in report
    assert f"| too_short | {sum(e['reason'] == 'too_short' for e in eliminated)} |" in report
