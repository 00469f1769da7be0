"""Reward model (InstructGPT, Sec. 3.5): SFT policy → K samples per prompt → label → preference pairs (correct
vs incorrect) → RM from the SFT model, reward at EOS, offset so demonstrations score 0 → held-out pairwise
accuracy. The result plugs into the label stage as `labellers: [{name: reward_model}]`."""
from __future__ import annotations

from prefect import flow

from flows.base import FlowConfig, FlowResult, finish_run, start_run
from ray_cluster.generation import SamplingSpec
from tasks.generation.generate import GenerateConfig, sample_completions
from tasks.labelling.label import LabelConfig, label_rewards
from tasks.data.prepare import TinyArithConfig, TokenizerConfig, build_tokenizer, make_tiny_arith
from tasks.selection.preferences import PreferenceConfig, make_preferences
from tasks.training.train import RewardModelTrainConfig, SFTConfig, SFTSource, train_sft
from tasks.training.train_preference import evaluate_reward_model, train_reward_model


class RewardModelConfig(FlowConfig):
    title: str = "Reward model on tiny-arith"
    data: TinyArithConfig = TinyArithConfig()
    tokenizer: TokenizerConfig = TokenizerConfig()
    policy_sft: SFTConfig = SFTConfig()
    sample: GenerateConfig = GenerateConfig(split="train", sampling=SamplingSpec(n=8, temperature=1.0))
    label: LabelConfig = LabelConfig(split="train")
    preferences: PreferenceConfig = PreferenceConfig()
    reward_model: RewardModelTrainConfig = RewardModelTrainConfig(optim={"loss": "pairwise_rm", "steps": 200, "lr": 1e-3})


@flow(name="reward-model", log_prints=True)
def reward_model(cfg: RewardModelConfig) -> FlowResult:
    ctx = start_run(cfg)
    problems = make_tiny_arith(cfg.data, ctx)
    tokenizer = build_tokenizer(problems, cfg.tokenizer, ctx)
    demonstrations = SFTSource(ref=problems, split="train")
    policy = train_sft("base", [demonstrations], tokenizer, None, cfg.policy_sft, ctx)
    samples = sample_completions("rm-data", problems, {"base": policy}, cfg.sample, ctx)
    labels = label_rewards("rm-data", samples, problems, cfg.label, ctx)
    preferences = make_preferences("rm", labels, problems, cfg.preferences, ctx)
    rm = train_reward_model("rm", preferences, tokenizer, policy, demonstrations, cfg.reward_model, ctx)
    heldout = evaluate_reward_model("rm", rm, preferences, ctx)
    return finish_run("reward_model", cfg, ctx, {"reward model": {"held-out pairs": heldout}},
                      outputs={"model": rm, "evaluation": heldout})
