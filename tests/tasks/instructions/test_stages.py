"""The Evol-Instruct and Self-Instruct stages on hand-written teacher texts (committed as samples artifacts, as
`sample_completions` writes them): lineage fields, the reason of every eliminated row, the next round's pool."""
from __future__ import annotations

import json
import tempfile
from pathlib import Path

from generation_assets import commit_folder
from tasks.core.records import SAMPLES
from tasks.core.stage_cache import StageContext
from tasks.core.store import ArtifactStore, StoreSpec
from tasks.core.tables import read_rows, write_records
from tasks.instructions.elimination import EliminationConfig
from tasks.instructions.evol_stages import (AnswerPromptConfig, EvolveConfig, SeedConfig, eliminate_evolved,
                                            evolution_prompts, evolved_dataset, screen_evolved, seed_pool)
from tasks.instructions.records import EVOLVED
from tasks.instructions.self_instruct import InstructionFilterConfig, PromptingConfig
from tasks.instructions.self_instruct_stages import (KeepConfig, RespondConfig, SeedTasksConfig, instruction_dataset,
                                                     instruction_prompts, keep_instructions, seed_tasks)

APPLES = "Tom has 3 apples and buys 5 more. How many apples does he have?"
PENS = "Sam has 4 pens and loses 1. How many pens are left?"


def _ctx(tmp_path) -> StageContext:
    return StageContext(store=StoreSpec(url=str(tmp_path / "store")), show_progress=False)


def _samples(store: ArtifactStore, key: str, texts: dict[str, str]):
    rows = [{"prompt_id": pid, "sample_index": 0, "model_id": "teacher", "text": text, "prompt_tokens": 1,
             "completion_tokens": 1, "finish_reason": "stop", "gen_s": 0.0} for pid, text in texts.items()]
    with tempfile.TemporaryDirectory() as tmp:
        write_records(Path(tmp) / "samples.parquet", rows, SAMPLES)
        return commit_folder(store, "test_samples", key, Path(tmp))


def _problems(store: ArtifactStore):
    rows = [{"id": "apples", "question": APPLES, "answer": "#### 8", "final": "8", "prompt": APPLES,
             "completion": "3+5=8\n#### 8"},
            {"id": "pens", "question": PENS, "answer": "#### 3", "final": "3", "prompt": PENS,
             "completion": "4-1=3\n#### 3"}]
    with tempfile.TemporaryDirectory() as tmp:
        write_records(Path(tmp) / "train.parquet", rows, EVOLVED.relaxed(["id", "prompt"]))
        return commit_folder(store, "test_problems", "two", Path(tmp))


def test_one_evol_round_keeps_answers_records_reasons_and_retries_failed_parents(tmp_path):
    ctx, store = _ctx(tmp_path), ArtifactStore(StoreSpec(url=str(tmp_path / "store")))
    pool = seed_pool.fn(_problems(store), SeedConfig(limit=None), ctx)
    evolve = EvolveConfig(operations=["add_constraints", "easier"], per_question=None)
    prompts = evolution_prompts.fn("round1", pool, 1, evolve, ctx)
    ids = [p["id"] for p in read_rows(store, prompts, "train")]
    assert ids == ["apples~r1.add_constraints", "apples~r1.easier", "pens~r1.add_constraints", "pens~r1.easier"]
    evolved = _samples(store, "evolve", {
        "apples~r1.add_constraints": "#Rewritten Prompt#:\nTom has 3 apples, buys 5 more and gives 2 to Ann. How "
                                     "many apples does Tom have now?",
        "apples~r1.easier": "tom has 3 apples, and buys 5 more: how many apples does he have",  # the source
        "pens~r1.add_constraints": "Rewritten Prompt: Sam has 4 pens",  # too short
        "pens~r1.easier": "Sam has 4 pens and loses 1 of them today. How many pens remain?"})
    cfg = EliminationConfig()
    screened = screen_evolved.fn("round1", prompts, evolved, cfg, AnswerPromptConfig(), ctx)
    assert [q["id"] for q in read_rows(store, screened, "train")] == ["apples~r1.add_constraints", "pens~r1.easier"]
    assert read_rows(store, screened, "train")[0]["prompt"].endswith("End with 'The answer is <number>.'")
    answers = _samples(store, "answers", {"apples~r1.add_constraints": "3+5-2=6. The answer is 6.",
                                          "pens~r1.easier": "Sam has some pens left."})  # no final answer
    judged = eliminate_evolved.fn("round1", pool, screened, answers, cfg, ctx)

    kept = read_rows(store, judged, "kept")
    assert [(k["id"], k["source_id"], k["parent_id"], k["operation"], k["round"], k["answer"]) for k in kept] == [
        ("apples~r1.add_constraints", "apples", "apples", "add_constraints", 1, "3+5-2=6. The answer is 6.")]
    reasons = {e["id"]: e["reason"] for e in read_rows(store, judged, "eliminated")}
    assert reasons == {"apples~r1.easier": "no_information_gain", "pens~r1.add_constraints": "too_short",
                       "pens~r1.easier": "unanswered"}
    # next pool: the kept question, and "pens", none of whose rewrites survived (evolved again next round)
    assert [(p["id"], p["round"]) for p in read_rows(store, judged, "pool")] == [
        ("apples~r1.add_constraints", 1), ("pens", 0)]
    metrics = store.manifest(judged)["metrics"]
    assert metrics["eliminated_by"] == {"too_short": 1, "no_information_gain": 1, "unanswered": 1}
    assert metrics["by_operation"] == {"add_constraints": {"kept": 1, "eliminated": 1},
                                       "easier": {"kept": 0, "eliminated": 2}}
    dataset = evolved_dataset.fn([judged], ctx)
    assert [r["id"] for r in read_rows(store, dataset, "train")] == ["apples~r1.add_constraints"]
    assert len(read_rows(store, dataset, "eliminated")) == 3


def test_one_self_instruct_round_keeps_novel_instructions_and_writes_sft_rows(tmp_path):
    ctx, store = _ctx(tmp_path), ArtifactStore(StoreSpec(url=str(tmp_path / "store")))
    seed_file = tmp_path / "seeds.jsonl"
    seed_file.write_text("".join(json.dumps(s) + "\n" for s in [
        {"instruction": "Give three tips for staying healthy.", "output": "Sleep, move, eat well."},
        {"instruction": "Write a haiku about autumn leaves.", "output": "Red leaves fall..."}]))
    pool = seed_tasks.fn(SeedTasksConfig(file=str(seed_file)), None, ctx)
    prompts = instruction_prompts.fn("round1", pool, 1, PromptingConfig(prompts_per_round=1, shots=2), ctx)
    (prompt,) = read_rows(store, prompts, "train")
    assert prompt["id"] == "r1-p0000" and sorted(prompt["example_ids"]) == ["seed-0000", "seed-0001"]
    assert prompt["prompt"].endswith("Task 3:")
    written = _samples(store, "written", {"r1-p0000": " Name the capital of Kenya and describe it briefly.\n"
                                          "Task 4: Give three tips for staying healthy and happy.\n"
                                          "Task 5: Describe this picture of a beach at sunset.\n"
                                          "Task 6: Name the capital of Kenya and describe it briefly."})
    keep = KeepConfig(per_completion=5, filters=InstructionFilterConfig())
    grown = keep_instructions.fn("round1", pool, written, 1, keep, ctx)
    assert [(p["instruction"], p["origin"], p["round"]) for p in read_rows(store, grown, "pool")][2:] == [
        ("Name the capital of Kenya and describe it briefly.", "generated", 1)]
    assert [(r["reason"], r["nearest"]) for r in read_rows(store, grown, "rejected")] == [
        ("too_similar", "Give three tips for staying healthy."), ("banned_keywords", None), ("duplicate", None)]
    responses = _samples(store, "responses", {"gen-r1-00000": "Nairobi, a city in the highlands."})
    data = instruction_dataset.fn([grown], responses, True, RespondConfig(), ctx)
    rows = read_rows(store, data, "train")
    assert [(r["prompt"], r["completion"], r["origin"]) for r in rows] == [
        ("Give three tips for staying healthy.", "Sleep, move, eat well.", "seed"),
        ("Write a haiku about autumn leaves.", "Red leaves fall...", "seed"),
        ("Name the capital of Kenya and describe it briefly.", "Nairobi, a city in the highlands.", "generated")]
    assert store.manifest(data)["metrics"]["rejected_by"] == {"too_similar": 1, "banned_keywords": 1, "duplicate": 1}
