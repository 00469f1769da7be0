"""The process-reward flow on a handful of problems, starting from the reward-model smoke run's policy, samples
and outcome RM; then its PRM used by the label stage as the `process_reward` labeller."""
from __future__ import annotations

import pytest

from flows.config import load_config
from flows.process_reward import ProcessRewardConfig, process_reward
from models.process_reward import STEP_AGGREGATES
from tasks.core.stage_cache import StageContext
from tasks.core.store import ArtifactStore
from tasks.core.tables import read_rows
from tasks.labelling.label import LabelConfig, label_rewards
from tasks.labelling.steps import split_steps

pytestmark = pytest.mark.slow


@pytest.mark.reuses_smoke_runs  # the SFT base, its samples and the outcome RM: the reward-model smoke run's
def test_math_shepherd_labels_a_prm_and_best_of_n_by_prm_orm_and_majority(tmp_path, ray_local, warm_store,
                                                                           keep_smoke_store):
    warm_store(tmp_path / "store", "reward_model")
    cfg = load_config(ProcessRewardConfig, "process_reward", "smoke", [f"store.url={tmp_path / 'store'}"])
    result = process_reward(cfg)
    store = ArtifactStore(cfg.store)
    # every solution's steps rebuild its text, with one label per step; the last is the solution's verdict
    steps = read_rows(store, result.outputs["steps"], "steps_train") + read_rows(store, result.outputs["steps"],
                                                                                 "steps_test")
    samples = {(r["prompt_id"], r["sample_index"]): r for r in read_rows(store, store.lookup(
        "label_rewards", store.list("label_rewards")[0]["key"]), "labels")}
    assert steps and all(len(r["hard"]) == len(r["soft"]) == len(r["steps"]) for r in steps)
    for row in steps:
        if (row["prompt_id"], row["sample_index"]) in samples:
            sample = samples[(row["prompt_id"], row["sample_index"])]
            assert "".join(row["steps"]) == sample["text"] and row["hard"][-1] == float(sample["correct"])
        assert all(h == float(s > 0) for h, s in zip(row["hard"], row["soft"]))  # hard = any completion correct
    # the held-out step accuracy is over every step of steps_test
    heldout = store.manifest(result.scores["verifiers"]["PRM held-out steps"])["metrics"]
    assert heldout["n"] == sum(len(r["steps"]) for r in read_rows(store, result.outputs["steps"], "steps_test"))
    best = store.manifest(result.outputs["best_of_n"])["metrics"]["curves"]
    assert [c["n"] for c in best] == [1, 2, 4] and all(c["problems"] == cfg.data.n_test for c in best)
    assert all(max(c["prm"], c["orm"], c["maj"]) <= c["oracle"] for c in best)
    report = (store.local_path(result.report) / "report.md").read_text()
    assert "## Best of N by verifiers" in report and "## Process labels (Math-Shepherd)" in report
    assert "train_prm[prm]" in report  # the PRM's loss curve in the training section

    # the PRM as a labeller: reward = min over its step scores of each completion
    prm = store.local_path(result.outputs["prm"])
    problems = store.lookup("make_tiny_arith", store.list("make_tiny_arith")[0]["key"])
    scored = store.lookup("sample_completions", store.list("sample_completions")[0]["key"])
    label_cfg = LabelConfig(split="train", labellers=[{"name": "process_reward"}],
                            process_reward={"model": str(prm), "aggregate": "min"})
    ctx = StageContext(store=cfg.store, show_progress=False)
    labels = read_rows(store, label_rewards.fn("with-prm", scored, problems, label_cfg, ctx), "labels")
    for row in labels:
        if row["status"] == "scored":
            assert len(row["step_scores"]) == len(split_steps(row["text"]))
            assert row["reward"] == pytest.approx(STEP_AGGREGATES["min"](row["step_scores"]))
    assert sum(r["status"] == "scored" for r in labels) >= len(labels) - 5  # an empty completion has no steps
    keep_smoke_store("process_reward", tmp_path / "store")  # benchmarks/best_of_n.py's test starts from it
