"""The reward-model flow on a handful of problems, then its RM used by the label stage."""
from __future__ import annotations

import json

import pytest

from flows.config import load_config
from flows.reward_model import RewardModelConfig, reward_model
from models.reward_model import load_reward_model
from tasks.labelling.label import LabelConfig, label_rewards
from tasks.core.stage_cache import StageContext
from tasks.core.store import ArtifactStore
from tasks.core.tables import read_rows

pytestmark = pytest.mark.slow


def test_reward_model_flow_trains_normalises_evaluates_and_plugs_into_labelling(tmp_path, ray_local,
                                                                                  keep_smoke_store):
    cfg = load_config(RewardModelConfig, "reward_model", "smoke", [f"store.url={tmp_path / 'store'}"])
    result = reward_model(cfg)
    store = ArtifactStore(cfg.store)
    pairs = store.list("make_preferences")[-1]["metrics"]
    assert pairs["pairs_train"] > 0 and pairs["pairs_test"] > 0
    evaluation = store.manifest(result.outputs["evaluation"])["metrics"]
    assert evaluation["n"] == pairs["pairs_test"] and evaluation["accuracy"] == evaluation["correct"] / evaluation["n"]
    folder = store.local_path(result.outputs["model"])
    model, _ = load_reward_model(folder)
    assert model.config.reward_bias != 0.0  # demonstrations now average 0
    assert (folder / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = (store.local_path(result.report) / "report.md").read_text()
    assert "| reward model | pairwise accuracy |" in report and "## Preference data" in report
    # best-of-N: one row per N over every held-out problem; the oracle (any correct) bounds both ways of picking
    best = store.manifest(result.outputs["best_of_n"])["metrics"]
    assert [c["n"] for c in best["curves"]] == [1, 2, 4] and all(c["problems"] == cfg.data.n_test
                                                                 for c in best["curves"])
    assert all(c["rm"] <= c["oracle"] and c["maj"] <= c["oracle"] for c in best["curves"])
    assert best["curves"][0]["rm"] == best["curves"][0]["oracle"]  # of one sample, every way picks that one
    assert "## Best of N" in report and (store.local_path(result.report) / "best_of_n.png").exists()
    # the first line: pairwise accuracy, and the RM's best-of-4 pick paired against majority-of-4 per problem
    summary = json.loads((store.local_path(result.report) / "summary.json").read_text())
    majority = summary["headline"]["comparisons"]["majority"]
    assert majority["n"] == cfg.data.n_test and majority["n_samples"] == 4
    assert (majority["rm"], majority["maj"]) == (best["curves"][-1]["rm"], best["curves"][-1]["maj"])
    assert report.splitlines()[2] == f"**{summary['headline']['sentence']}** ({summary['headline']['metric']})"
    # every stage's row points at that stage's own artifact (the RM row once showed the normalised model's)
    timing = json.loads((store.local_path(result.report) / "summary.json").read_text())["timing"]
    rows = {r["stage"]: r["artifact"] for r in timing}
    assert rows["train_reward_model[rm]"].startswith("train_reward_model/")
    assert rows["normalize_reward_model"].startswith("normalize_reward_model/")

    samples = store.lookup("sample_completions", store.list("sample_completions")[-1]["key"])
    problems = store.lookup("make_tiny_arith", store.list("make_tiny_arith")[-1]["key"])
    label_cfg = LabelConfig(split="train", labellers=[{"name": "math_answer"}, {"name": "reward_model"}],
                            combine="product", reward_model={"model": str(folder)})
    ctx = StageContext(store=cfg.store, show_progress=False)
    labels = read_rows(store, label_rewards.fn("with-rm", samples, problems, label_cfg, ctx), "labels")
    assert all(r["reward"] == pytest.approx(r["reward_math_answer"] * r["reward_reward_model"]) for r in labels)
    keep_smoke_store("reward_model", tmp_path / "store")  # a warm start for later tests (conftest.py)
