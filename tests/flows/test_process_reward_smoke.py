"""The process-reward flow on a handful of problems (the reward-model smoke run's): its verifiers' problems, an
outcome RM, Math-Shepherd labels, a PRM, best-of-N by PRM vs outcome RM vs majority; then the PRM used by the label
stage as the `process_reward` labeller."""
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


@pytest.mark.reuses_smoke_runs  # the problems, tokenizer and SFT base: the reward-model smoke run's
def test_math_shepherd_labels_a_prm_and_best_of_n_by_prm_orm_and_majority(tmp_path, ray_local, warm_store,
                                                                           keep_smoke_store):
    warm_store(tmp_path / "store", "reward_model")
    cfg = load_config(ProcessRewardConfig, "process_reward", "smoke", [f"store.url={tmp_path / 'store'}"])
    result = process_reward(cfg)
    store = ArtifactStore(cfg.store)

    def input_of(ref, name: str):
        spec = store.manifest(ref)["inputs"][name]
        return store.lookup(spec["stage"], spec["key"])

    # the verifiers' problems: with share 0 (this config) the policy's own (tests/tasks/data/test_holdout.py
    # checks a real split)
    problems = input_of(input_of(result.outputs["steps"], "prompts"), "problems")
    verifier_ids = {r["id"] for r in read_rows(store, problems, "verifier")}
    assert verifier_ids == {r["id"] for r in read_rows(store, problems, "train")}
    # every solution's steps rebuild the sampled text, with one label per step; the last is the solution's verdict
    steps = read_rows(store, result.outputs["steps"], "steps_train") + read_rows(store, result.outputs["steps"],
                                                                                 "steps_test")
    solutions = input_of(input_of(result.outputs["steps"], "prompts"), "labels")
    samples = {(r["prompt_id"], r["sample_index"]): r for r in read_rows(store, solutions, "labels")}
    assert steps and all(len(r["hard"]) == len(r["soft"]) == len(r["steps"]) for r in steps)
    for row in steps:
        assert row["prompt_id"] in verifier_ids
        sample = samples[(row["prompt_id"], row["sample_index"])]
        assert "".join(row["steps"]) == sample["text"] and row["hard"][-1] == float(sample["correct"])
        assert all(h == float(s > 0) for h, s in zip(row["hard"], row["soft"]))  # hard = any completion correct
    # the held-out step accuracy is over every step of steps_test
    heldout = store.manifest(result.scores["verifiers"]["PRM held-out steps"])["metrics"]
    assert heldout["n"] == sum(len(r["steps"]) for r in read_rows(store, result.outputs["steps"], "steps_test"))
    # the outcome RM's own held-out pairwise accuracy, on the comparisons it was trained beside
    orm_pairs = result.scores["verifiers"]["outcome RM held-out pairs"]
    assert store.manifest(orm_pairs)["metrics"]["n"] == len(read_rows(store, input_of(orm_pairs, "preferences"),
                                                                      "pairs_test"))
    best = store.manifest(result.outputs["best_of_n"])["metrics"]["curves"]
    assert [c["n"] for c in best] == [1, 2, 4] and all(c["problems"] == cfg.data.n_test for c in best)
    assert all(max(c["prm"], c["orm"], c["maj"]) <= c["oracle"] for c in best)
    report = (store.local_path(result.report) / "report.md").read_text()
    assert "## Best of N by verifiers" in report and "## Process labels (Math-Shepherd)" in report
    assert "train_prm[prm]" in report  # the PRM's loss curve in the training section

    # the PRM as a labeller: reward = min over its step scores of each completion
    prm = store.local_path(result.outputs["prm"])
    scored = input_of(solutions, "samples")
    label_cfg = LabelConfig(split="verifier", labellers=[{"name": "process_reward"}],
                            process_reward={"model": str(prm), "aggregate": "min"})
    ctx = StageContext(store=cfg.store, show_progress=False)
    labels = read_rows(store, label_rewards.fn("with-prm", scored, problems, label_cfg, ctx), "labels")
    for row in labels:
        if row["status"] == "scored":
            assert len(row["step_scores"]) == len(split_steps(row["text"]))
            assert row["reward"] == pytest.approx(STEP_AGGREGATES["min"](row["step_scores"]))
    assert sum(r["status"] == "scored" for r in labels) >= len(labels) - 5  # an empty completion has no steps
    keep_smoke_store("process_reward", tmp_path / "store")  # benchmarks/best_of_n.py's test starts from it
