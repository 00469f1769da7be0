"""Reward model (InstructGPT, Sec. 3.5): SFT policy → K samples per prompt → label → preference pairs (correct
vs incorrect) → RM from the SFT model, reward at EOS, offset so demonstrations score 0 → held-out pairwise
accuracy, and best-of-N on held-out problems: the RM's pick among the policy's K samples vs their majority answer
(the use an RM is for: choosing). The result plugs into the label stage as `labellers: [{name: reward_model}]`."""
from __future__ import annotations

from prefect import flow

from pydantic import BaseModel, ConfigDict

from flows.base import FlowResult, finish_run, start_run
from flows.policy import PolicyFlowConfig, PolicyStart, sft_base
from ray_cluster.generation import SamplingSpec
from tasks.generation.generate import GenerateConfig, sample_completions
from tasks.labelling.label import LabelConfig, label_rewards
from tasks.selection.preferences import PreferenceConfig, make_preferences
from tasks.training.train import RewardModelTrainConfig
from tasks.training.train_preference import evaluate_reward_model, train_reward_model
from tasks.core.store import ArtifactRef
from tasks.evaluation.headline import RankingHeadline
from tasks.evaluation.rerank import RerankConfig, rerank


class BestOfNConfig(BaseModel):
    """K samples per held-out problem from the SFT policy, labelled by answer, picked from by the RM."""

    model_config = ConfigDict(extra="forbid")
    sample: GenerateConfig = GenerateConfig(split="test", sampling=SamplingSpec(n=8, temperature=0.7))
    label: LabelConfig = LabelConfig(split="test")
    rerank: RerankConfig = RerankConfig()


class RewardModelData(BaseModel):
    """How the RM's comparisons are made and how it is trained (shared with PPO's InstructGPT chain)."""

    model_config = ConfigDict(extra="forbid")
    sample: GenerateConfig = GenerateConfig(split="train", sampling=SamplingSpec(n=8, temperature=1.0))
    label: LabelConfig = LabelConfig(split="train")
    preferences: PreferenceConfig = PreferenceConfig()
    reward_model: RewardModelTrainConfig = RewardModelTrainConfig(optim={"loss": "pairwise_rm", "steps": 200,
                                                                         "lr": 1e-3})


class RewardModelConfig(RewardModelData, PolicyFlowConfig):
    title: str = "Reward model on tiny-arith"
    best_of_n: BestOfNConfig = BestOfNConfig()


def train_rm_on_policy(start: PolicyStart, cfg: RewardModelData, ctx) -> tuple[ArtifactRef, ArtifactRef, ArtifactRef]:
    """InstructGPT's RM step: the policy's samples → labels → comparisons → an RM from the policy; (RM, pairs,
    the labelled samples)."""
    samples = sample_completions("rm-data", start.problems, {"base": start.base}, cfg.sample, ctx)
    labels = label_rewards("rm-data", samples, start.problems, cfg.label, ctx)
    preferences = make_preferences("rm", labels, start.problems, cfg.preferences, ctx)
    rm = train_reward_model("rm", preferences, start.tokenizer, start.base, start.demonstrations, cfg.reward_model,
                            ctx)
    return rm, preferences, labels


@flow(name="reward-model", log_prints=True)
def reward_model(cfg: RewardModelConfig) -> FlowResult:
    ctx = start_run(cfg)
    start = sft_base(cfg, ctx, probe=(cfg.sample, cfg.label))
    problems, policy = start.problems, start.base
    rm, preferences, _ = train_rm_on_policy(start, cfg, ctx)
    heldout = evaluate_reward_model("rm", rm, preferences, ctx)
    test_samples = sample_completions("rm-best-of-n", problems, {"base": policy}, cfg.best_of_n.sample, ctx)
    test_labels = label_rewards("rm-best-of-n", test_samples, problems, cfg.best_of_n.label, ctx)
    best = rerank("rm", test_labels, problems, rm, cfg.best_of_n.rerank, ctx)
    return finish_run("reward_model", cfg, ctx, {"reward model": {"held-out pairs": heldout, "best-of-n": best}},
                      outputs={"model": rm, "evaluation": heldout, "best_of_n": best}, headline=RankingHeadline())
