"""WizardMath's IRM on a handful of questions (the reward-model smoke run's policy), then RLEIF's reward
r = r_I · r_A flowing into online RL (GRPO): each rollout's reward is its answer's reward times σ(IRM score of
its question), the IRM scored independently here."""
from __future__ import annotations

import json
import math

import pyarrow.parquet as pq
import pytest
import torch

from flows.config import load_config
from flows.grpo import GRPOConfig, grpo
from flows.instruction_reward import InstructionRewardConfig, instruction_reward
from models.reward_model import encode_for_reward, load_reward_model, rewards_at_eos
from tasks.core.store import ArtifactStore
from tasks.core.tables import read_rows
from tasks.labelling.labellers import register_labeller

pytestmark = pytest.mark.slow


@register_labeller("test_approve_all")
def _approve_all(completion: str, problem: dict, options) -> dict:
    """r_A = 1 for every answer (the smoke policy answers nothing right), so the reward is r_I alone."""
    return {"reward": 1.0, "correct": True, "pred": None, "status": "ok", "error": None}


@pytest.mark.reuses_smoke_runs  # the SFT base: the reward-model smoke run's
def test_an_irm_ranks_variants_and_its_product_with_the_answer_reward_drives_grpo(tmp_path, ray_local, warm_store):
    warm_store(tmp_path / "store", "reward_model")
    cfg = load_config(InstructionRewardConfig, "instruction_reward", "smoke", [f"store.url={tmp_path / 'store'}"])
    result = instruction_reward(cfg)
    store = ArtifactStore(cfg.store)
    rankings = store.manifest(result.outputs["rankings"])["metrics"]
    assert rankings["groups_train"] == cfg.data.n_train and rankings["pairs_test"] == 3 * cfg.data.n_test
    heldout = store.manifest(result.scores["instruction reward model"]["held-out pairs"])["metrics"]
    assert heldout["n"] == rankings["pairs_test"]
    summary = json.loads((store.local_path(result.report) / "summary.json").read_text())
    assert summary["headline"]["sentence"].startswith("The instruction reward model ranked the better-posed question")

    irm = store.local_path(result.outputs["model"])
    grpo_cfg = load_config(GRPOConfig, "grpo", "smoke", [
        f"store.url={tmp_path / 'grpo'}", "rl.iterations=2", "rl.eval_every=2",
        f"label={{labellers: [{{name: test_approve_all}}, {{name: instruction_reward}}], combine: product, "
        f"split: train, "
        f"instruction_reward: {{model: {irm}}}}}"])
    grpo(grpo_cfg)
    grpo_store = ArtifactStore(grpo_cfg.store)
    [online] = grpo_store.list("train_online")
    rollouts = pq.read_table(grpo_store.local_path(grpo_store.lookup("train_online", online["key"]))
                             / "rollouts.parquet").to_pylist()
    train = {r["id"]: r for r in read_rows(grpo_store, grpo_store.lookup(
        "make_tiny_arith", grpo_store.list("make_tiny_arith")[0]["key"]), "train")}
    model, tokenizer = load_reward_model(irm)
    ids = sorted({r["prompt_id"] for r in rollouts})
    enc = encode_for_reward(tokenizer, [train[i]["question"] for i in ids], 1024)
    r_i = dict(zip(ids, torch.sigmoid(rewards_at_eos(model, enc["input_ids"], enc["attention_mask"],
                                                     enc["eos_index"])).tolist()))
    assert len(set(round(v, 6) for v in r_i.values())) > 1  # the IRM tells the questions apart
    for row in rollouts:
        assert math.isclose(row["score"], 1.0 * r_i[row["prompt_id"]], abs_tol=1e-5)
