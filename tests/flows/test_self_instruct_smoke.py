"""The Self-Instruct flow end to end with a tiny random teacher and student: the shipped seed tasks, 2 rounds of 2
few-shot prompts, responses, the SFT dataset, the student fine-tuned on it. Each prompt is sampled twice greedily,
so its two texts are identical: the second can never join the pool (a `duplicate` of the first, or rejected for
the same reason as the first)."""
from __future__ import annotations

import json

import pytest

from flows.config import load_config
from flows.self_instruct import SelfInstructConfig, self_instruct
from generation_assets import TINY, build_model_folder
from tasks.core.store import ArtifactStore
from tasks.core.tables import read_rows
from tasks.instructions.self_instruct import INSTRUCTION_FILTERS

pytestmark = pytest.mark.slow


def test_self_instruct_rounds_dataset_and_student(tmp_path, ray_local):
    model = {"path": str(build_model_folder(tmp_path / "tiny", size=TINY.model_copy(update={"max_positions": 1024})))}
    cfg = load_config(SelfInstructConfig, "self_instruct", "smoke", [
        f"store.url={tmp_path / 'store'}", f"teacher={json.dumps(model)}", f"student={json.dumps(model)}"])
    result = self_instruct(cfg)
    store = ArtifactStore(cfg.store)
    rounds = sorted(store.list("keep_instructions"), key=lambda m: m["config"]["round"])
    assert [m["config"]["round"] for m in rounds] == [1, 2]
    last = store.lookup("keep_instructions", rounds[-1]["key"])
    pool = read_rows(store, last, "pool")
    seeds = [p for p in pool if p["origin"] == "seed"]
    generated = [p for p in pool if p["origin"] == "generated"]
    assert len(seeds) == 20 and generated and {p["round"] for p in generated} <= {1, 2}
    rejected = [r for m in rounds for r in read_rows(store, store.lookup("keep_instructions", m["key"]), "rejected")]
    assert rejected and all(r["reason"] in INSTRUCTION_FILTERS for r in rejected)

    # the constructed case: per prompt, two identical greedy texts; at most the first joins the pool
    for m in rounds:
        ref = store.lookup("keep_instructions", m["key"])
        written = read_rows(store, store.lookup("sample_completions", store.manifest(ref)["inputs"]["written"]["key"]),
                            "samples")
        by_prompt = {}
        for s in written:
            by_prompt.setdefault(s["prompt_id"], []).append(s["text"])
        assert all(len(texts) == 2 and texts[0] == texts[1] for texts in by_prompt.values())
        kept_here = [p for p in pool if p["round"] == m["config"]["round"]]
        assert len({p["prompt_id"] for p in kept_here}) == len(kept_here)  # one kept per prompt, never both
        rejected_here = read_rows(store, ref, "rejected")
        for p in kept_here:
            assert any(r["prompt_id"] == p["prompt_id"] and r["reason"] == "duplicate" for r in rejected_here)
    # the novelty filter compares against the whole pool: no two kept instructions are identical
    assert len({p["instruction"] for p in pool}) == len(pool)

    # the SFT data: the seeds' pairs and a response for each generated instruction the teacher answered
    data = read_rows(store, result.outputs["dataset"], "train")
    metrics = store.manifest(result.outputs["dataset"])["metrics"]
    assert metrics["seeds"] == 20 and metrics["generated"] + metrics["empty_response"] == len(generated)
    assert len(data) == 20 + metrics["generated"] and all(r["completion"].strip() for r in data)
    assert {r["instruction"] for r in data if r["origin"] == "generated"} <= {p["instruction"] for p in generated}

    # the student was fine-tuned from the given model on exactly those rows
    sft = store.manifest(result.outputs["student"])
    assert sft["inputs"]["data0:train"]["key"] == result.outputs["dataset"].key
    assert sft["inputs"]["init"]["key"] == store.list("import_model")[-1]["key"]
    assert sft["metrics"]["train_rows"] == len(data) and sft["metrics"]["steps"] == 2
    report = (store.local_path(result.report) / "report.md").read_text()
    assert "## Self-Instruct" in report and f"| duplicate | {metrics['rejected_by']['duplicate']} |" in report
    assert "| train_sft[student] |" in report
