"""Reward model (InstructGPT, Sec. 3.5): SFT policy → K samples per prompt → label → preference pairs (correct
vs incorrect) → RM from the SFT model, reward at EOS, offset so demonstrations score 0 → held-out pairwise
accuracy. The result plugs into the label stage as `labellers: [{name: reward_model}]`."""
from __future__ import annotations

from prefect import flow

from flows.base import FlowResult, finish_run, start_run
from flows.policy import PolicyFlowConfig, sft_base
from ray_cluster.generation import SamplingSpec
from tasks.generation.generate import GenerateConfig, sample_completions
from tasks.labelling.label import LabelConfig, label_rewards
from tasks.selection.preferences import PreferenceConfig, make_preferences
from tasks.training.train import RewardModelTrainConfig
from tasks.training.train_preference import evaluate_reward_model, train_reward_model


class RewardModelConfig(PolicyFlowConfig):
    title: str = "Reward model on tiny-arith"
    sample: GenerateConfig = GenerateConfig(split="train", sampling=SamplingSpec(n=8, temperature=1.0))
    label: LabelConfig = LabelConfig(split="train")
    preferences: PreferenceConfig = PreferenceConfig()
    reward_model: RewardModelTrainConfig = RewardModelTrainConfig(optim={"loss": "pairwise_rm", "steps": 200,
                                                                         "lr": 1e-3})


@flow(name="reward-model", log_prints=True)
def reward_model(cfg: RewardModelConfig) -> FlowResult:
    ctx = start_run(cfg)
    start = sft_base(cfg, ctx)
    problems, tokenizer, demonstrations, policy = start.problems, start.tokenizer, start.demonstrations, start.base
    samples = sample_completions("rm-data", problems, {"base": policy}, cfg.sample, ctx)
    labels = label_rewards("rm-data", samples, problems, cfg.label, ctx)
    preferences = make_preferences("rm", labels, problems, cfg.preferences, ctx)
    rm = train_reward_model("rm", preferences, tokenizer, policy, demonstrations, cfg.reward_model, ctx)
    heldout = evaluate_reward_model("rm", rm, preferences, ctx)
    return finish_run("reward_model", cfg, ctx, {"reward model": {"held-out pairs": heldout}},
                      outputs={"model": rm, "evaluation": heldout})
