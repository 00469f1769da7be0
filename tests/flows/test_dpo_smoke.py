"""The DPO flow on a handful of problems: pairs are a correct and an incorrect sample of one problem, the
reference log-probs are the SFT model's (DPO's first step sits at log 2), DPO lowers its loss, a compute-matched
control trains on the chosen responses alone from the same base, and the report scores all three models."""
from __future__ import annotations

import math

import pytest

from flows.config import ConfigError, load_config
from flows.dpo import DPOFlowConfig, dpo
from tasks.core.store import ArtifactStore
from tasks.core.tables import read_rows


@pytest.mark.slow
@pytest.mark.reuses_smoke_runs  # the SFT base and its labelled samples: the reward-model smoke run's (same sizes)
def test_dpo_flow_pairs_reference_training_and_report(tmp_path, ray_local, keep_smoke_store, warm_store):
    warm_store(tmp_path / "store", "reward_model")
    cfg = load_config(DPOFlowConfig, "dpo", "smoke", [f"store.url={tmp_path / 'store'}"])
    result = dpo(cfg)
    store = ArtifactStore(cfg.store)

    # every pair: a correct (chosen) and an incorrect (rejected) sample of the same training problem
    labels = store.lookup("label_rewards", store.manifest(result.outputs["preferences"])["inputs"]["labels"]["key"])
    correct = {(r["prompt_id"], r["text"]): r["correct"] for r in read_rows(store, labels, "labels")}
    pairs = read_rows(store, result.outputs["preferences"], "pairs_train")
    assert pairs and all(correct[(p["prompt_id"], p["chosen"])] and not correct[(p["prompt_id"], p["rejected"])]
                         for p in pairs)
    assert store.manifest(result.outputs["preferences"])["metrics"]["pairs_test"] == 0  # heldout_fraction: 0

    # reference log-probs of every training pair, row for row
    reference = read_rows(store, result.outputs["reference"], "reference")
    assert [r["prompt_id"] for r in reference] == [p["prompt_id"] for p in pairs]
    assert all(r["chosen_logp"] < 0 and r["rejected_logp"] < 0 for r in reference)

    # DPO starts from the reference itself, so its first loss is -log σ(0) = log 2; then it goes down
    history = read_rows(store, result.outputs["dpo"], "metrics")
    assert len(history) == cfg.dpo.optim.steps
    assert history[0]["loss"] == pytest.approx(math.log(2), abs=1e-3)
    assert history[-1]["loss"] < history[0]["loss"]
    assert history[-1]["accuracy"] > 0.5  # the chosen sample's implicit reward beats the rejected one's
    trained = store.manifest(result.outputs["dpo"])
    assert trained["stage"] == "train_dpo" and trained["metrics"]["train_rows"] == len(pairs)

    # the control: DPO minus its preference term, i.e. SFT on each prompt's chosen response, same base and budget
    control = store.manifest(result.outputs["control"])
    assert control["stage"] == "train_sft" and control["inputs"]["init"]["key"] == result.outputs["base"].key
    assert {k: control["config"]["optim"][k] for k in ("steps", "batch_size", "lr")} == {
        "steps": cfg.dpo.optim.steps, "batch_size": cfg.dpo.optim.batch_size, "lr": cfg.dpo.optim.lr}
    best = read_rows(store, result.outputs["preferences"], "best_train")
    assert {b["prompt_id"] for b in best} == {p["prompt_id"] for p in pairs}  # one per prompt with a pair
    assert all(correct[(b["prompt_id"], b["completion"])] for b in best)

    assert set(result.scores) == {"base", "dpo", "control"} and "pass@1" in result.scores["dpo"]
    report = (store.local_path(result.report) / "report.md").read_text()
    n_test = cfg.data.n_test
    for needle in (f"| base | pass@1 | {n_test} |", f"| dpo | pass@1 | {n_test} |",
                   f"| control | pass@1 | {n_test} |", "## Preference data", "| train_dpo[dpo] |"):
        assert needle in report
    keep_smoke_store("dpo", tmp_path / "store")  # a warm start for later tests (conftest.py)


@pytest.mark.parametrize("override, message", [
    ("sample.sampling.n=1", r"sample\.sampling\.n=1: a preference pair needs"),
    ("sample.sampling.temperature=0", r"greedy decoding gives K identical completions"),
    ("label.split=test", r"label\.split='test' but sample\.split='train'"),
    ("preferences.split=test", r"preferences\.split='test' but sample\.split='train'"),
])
def test_settings_that_cannot_make_pairs_fail_at_config_time(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(DPOFlowConfig, "dpo", "smoke", [override])


@pytest.mark.parametrize("name", ["default", "smoke"])
def test_shipped_configs_train_dpo_from_the_sft_base(name):
    cfg = load_config(DPOFlowConfig, "dpo", name)
    assert cfg.dpo.optim.loss == "dpo" and cfg.sample.sampling.n >= 2 and cfg.preferences.heldout_fraction == 0
