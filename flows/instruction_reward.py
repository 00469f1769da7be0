"""WizardMath's instruction reward model (IRM): it ranks instructions on definition, precision and integrity.
Here the ranking is constructed where it can be checked (tasks/data/instruction_rankings.py): each question as
written > the question missing a quantity it needs > the question contradicting itself; an RM learns it with
InstructGPT's K-way ranking loss and is judged on held-out questions' variants (pairwise accuracy). The IRM plugs
into the label stage as `labellers: [{name: math_answer}, {name: instruction_reward}]` with `combine: product`:
RLEIF's r = r_I · r_A (online RL included)."""
from __future__ import annotations

from prefect import flow
from pydantic import Field

from flows.base import FlowResult, finish_run, start_run
from flows.policy import PolicyFlowConfig, sft_base
from tasks.data.instruction_rankings import InstructionRankingConfig, instruction_rankings
from tasks.evaluation.headline import RankingHeadline
from tasks.training.train import RewardModelTrainConfig
from tasks.training.train_preference import evaluate_reward_model, train_reward_model


class InstructionRewardConfig(PolicyFlowConfig):
    title: str = "Instruction reward model (WizardMath IRM) on tiny-arith"
    rankings: InstructionRankingConfig = InstructionRankingConfig()
    irm: RewardModelTrainConfig = Field(default=RewardModelTrainConfig(optim={"loss": "ranking_rm", "steps": 200,
                                                                              "lr": 5e-4}),
                                        description="K-way ranking loss over each question's ranked variants")


@flow(name="instruction-reward", log_prints=True)
def instruction_reward(cfg: InstructionRewardConfig) -> FlowResult:
    ctx = start_run(cfg)
    start = sft_base(cfg, ctx)
    rankings = instruction_rankings("irm", start.problems, cfg.rankings, ctx)
    irm = train_reward_model("irm", rankings, start.tokenizer, start.base, None, cfg.irm, ctx)
    heldout = evaluate_reward_model("irm", irm, rankings, ctx)
    return finish_run("instruction_reward", cfg, ctx, {"instruction reward model": {"held-out pairs": heldout}},
                      outputs={"model": irm, "rankings": rankings}, headline=RankingHeadline(
                          result="instruction reward model", label="The instruction reward model",
                          ranks="the better-posed question above the worse (as written > missing a quantity > "
                                "contradictory)"))
