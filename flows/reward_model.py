"""Reward model (InstructGPT, Sec. 3.5): SFT policy → K samples per prompt → label → preference pairs (correct
vs incorrect) → RM from the SFT model, reward at EOS, offset so demonstrations score 0 → held-out pairwise
accuracy. The result plugs into the label stage as `labellers: [{name: reward_model}]`."""
from __future__ import annotations

import os

from prefect import flow
from pydantic import BaseModel, ConfigDict

from ray_cluster.connect import RayConfig
from ray_cluster.generation import SamplingSpec
from tasks.generation.generate import GenerateConfig, sample_completions
from tasks.labelling.label import LabelConfig, label_rewards
from tasks.data.prepare import TinyArithConfig, TokenizerConfig, build_tokenizer, make_tiny_arith
from tasks.selection.preferences import PreferenceConfig, make_preferences
from tasks.core.stage_cache import StageContext
from tasks.core.store import ArtifactRef, StoreSpec
from tasks.evaluation.summary_report import write_summary_report
from tasks.training.train import SFTSource, TrainConfig, train_sft
from tasks.training.train_preference import evaluate_reward_model, train_reward_model


class RewardModelConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    title: str = "Reward model on tiny-arith"
    store: StoreSpec = StoreSpec(url=os.environ.get("WINNOW_STORE", ".winnow/store"))
    ray: RayConfig = RayConfig()
    show_progress: bool = True
    data: TinyArithConfig = TinyArithConfig()
    tokenizer: TokenizerConfig = TokenizerConfig()
    policy_sft: TrainConfig = TrainConfig()
    sample: GenerateConfig = GenerateConfig(split="train", sampling=SamplingSpec(n=8, temperature=1.0))
    label: LabelConfig = LabelConfig(split="train")
    preferences: PreferenceConfig = PreferenceConfig()
    reward_model: TrainConfig = TrainConfig(optim={"loss": "pairwise_rm", "steps": 200, "lr": 1e-3})


class RewardModelResult(BaseModel):
    model: ArtifactRef
    evaluation: ArtifactRef
    report: ArtifactRef


@flow(name="reward-model", log_prints=True)
def reward_model(cfg: RewardModelConfig) -> RewardModelResult:
    ctx = StageContext.for_run(cfg.store, cfg.ray, cfg.show_progress)
    problems = make_tiny_arith(cfg.data, ctx)
    tokenizer = build_tokenizer(problems, cfg.tokenizer, ctx)
    demonstrations = SFTSource(ref=problems, split="train")
    policy = train_sft("base", [demonstrations], tokenizer, None, cfg.policy_sft, ctx)
    samples = sample_completions("rm-data", problems, {"base": policy}, cfg.sample, ctx)
    labels = label_rewards("rm-data", samples, problems, cfg.label, ctx)
    preferences = make_preferences("rm", labels, problems, cfg.preferences, ctx)
    rm = train_reward_model("rm", preferences, tokenizer, policy, demonstrations, cfg.reward_model, ctx)
    heldout = evaluate_reward_model("rm", rm, preferences, ctx)
    stages = {"make_tiny_arith": problems, "build_tokenizer": tokenizer, "train_sft[base]": policy,
              "sample": samples, "label": labels, "make_preferences": preferences, "train_reward_model": rm,
              "evaluate_reward_model": heldout}
    report = write_summary_report(cfg.title, {"reward model, held-out pairs": heldout}, {"reward_model": rm},
                                  stages, ctx)
    return RewardModelResult(model=rm, evaluation=heldout, report=report)
