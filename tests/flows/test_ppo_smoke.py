"""InstructGPT's chain end to end on a handful of problems: SFT → reward model → PPO whose reward is the RM's
score (critic initialised from the RM, GAE, KL in the reward), reporting per iteration the RM score beside the
true accuracy (issue 16)."""
from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest

from flows.config import load_config
from flows.ppo import PPOConfig, ppo
from tasks.core.store import ArtifactStore

pytestmark = pytest.mark.slow


def test_the_smoke_config_keeps_ppos_algorithm_under_its_own_rl_section():
    cfg = load_config(PPOConfig, "ppo", "smoke", ["rl.algorithm.kl_coef=0.1"])
    alg = cfg.rl.algorithm
    assert (alg.advantage, alg.kl_in, alg.whiten_advantages, alg.missing_eos_penalty) == ("gae", "reward", True, -1.0)
    assert alg.kl_coef == 0.1 and cfg.rl.iterations == 3  # the file's and the override's values on top


@pytest.mark.reuses_smoke_runs  # the SFT base and the RM: the reward-model smoke run's (same sections)
def test_sft_then_reward_model_then_ppo_with_the_rms_score(tmp_path, ray_local, warm_store):
    warm_store(tmp_path / "store", "reward_model")
    cfg = load_config(PPOConfig, "ppo", "smoke", [f"store.url={tmp_path / 'store'}"])
    result = ppo(cfg)
    store = ArtifactStore(cfg.store)
    [online] = store.list("train_online")
    assert online["inputs"]["reward_model"]["content_hash"] == result.outputs["reward_model"].content_hash
    folder = store.local_path(store.lookup("train_online", online["key"]))
    history = pq.read_table(folder / "metrics.parquet").to_pylist()
    assert len(history) == cfg.rl.iterations
    for row in history:
        assert {"value_loss", "value_clip_frac", "rm_score", "accuracy", "kl", "ref_kl"} <= set(row)
        assert row["reward_mean"] == pytest.approx(row["rm_score"])  # the reward is the RM's score alone
    rollouts = pq.read_table(folder / "rollouts.parquet").to_pylist()
    no_eos = [r for r in rollouts if not r["eos"]]
    assert all(r["reward"] == -1.0 for r in no_eos)  # the N+ EOS trick replaced their RM score
    summary = json.loads((store.local_path(result.report) / "summary.json").read_text())
    assert {row["model"] for row in summary["accuracy"]} == {"base", "ppo"}
    assert "## Online RL" in (store.local_path(result.report) / "report.md").read_text()


@pytest.mark.parametrize("flow", ["grpo", "ppo"])
def test_the_online_defaults_start_from_the_quickstarts_sft_base(flow):
    """Their comparisons are against the quickstart's base: the same data and SFT sections as the RFT default
    (a PPO default once lost these sections and silently trained a 600-step base from the class defaults)."""
    from flows.grpo import GRPOConfig
    from flows.rft import RFTConfig

    cfg = load_config({"grpo": GRPOConfig, "ppo": PPOConfig}[flow], flow, "default")
    rft = load_config(RFTConfig, "rft", "default")
    assert cfg.data == rft.data and cfg.base_sft == rft.base_sft
