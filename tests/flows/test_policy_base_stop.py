"""`base_stop` in the policy recipes (RFT, reward model, DPO): the base is probed with the recipe's own sampler and
labeller of its training problems; a recipe without them refuses the rule before any stage runs."""
from __future__ import annotations

import pytest

from flows.config import load_config
from flows.dpo import DPOFlowConfig
from flows.grpo import GRPOConfig
from flows.policy import sft_base
from tasks.core.stage_cache import StageContext
from tasks.core.store import ArtifactStore

pytestmark = pytest.mark.slow

# an unreachable target: probed after 120, 122 and 124 steps, stopped by the limit
STOP = ["base_stop.pass_rate=1.0", "base_stop.probe_problems=4", "base_stop.extend_steps=2",
        "base_stop.extend_warmup=1", "base_stop.max_steps=124"]


def test_the_dpo_base_is_probed_with_the_recipes_sampler_and_labeller(tmp_path, ray_local):
    cfg = load_config(DPOFlowConfig, "dpo", "smoke", [f"store.url={tmp_path / 'store'}", *STOP])
    start = sft_base(cfg, StageContext(store=cfg.store, show_progress=False), probe=(cfg.sample, cfg.label))
    store = ArtifactStore(cfg.store)
    segments = {m["metrics"]["model_name"]: m for m in store.list("train_sft")}
    assert sorted(segments) == ["base", "base+120", "base+122"]
    assert store.manifest(start.base)["metrics"]["model_name"] == "base+122"
    probes = store.list("label_rewards")
    assert [m["metrics"]["rows"] for m in probes] == [4 * cfg.sample.sampling.n] * 3
    assert {m["config"]["split"] for m in probes} == {"train"}  # training problems only, never the test split


def test_a_recipe_with_nothing_to_probe_refuses_base_stop_before_any_stage(tmp_path):
    cfg = load_config(GRPOConfig, "grpo", "smoke", [f"store.url={tmp_path / 'store'}", *STOP])
    with pytest.raises(ValueError, match="base_stop: GRPOConfig's recipe does not sample and label"):
        sft_base(cfg, StageContext(store=cfg.store, show_progress=False))
    assert not ArtifactStore(cfg.store).list()
