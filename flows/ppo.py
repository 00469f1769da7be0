"""PPO as InstructGPT ran it (Ouyang et al. 2022), with the N+ implementation details (Huang et al. 2024).

SFT base → (InstructGPT's chain, when `reward_model` is set) samples → comparisons → a reward model from the SFT
model → PPO: rollouts on the long-lived engines; the reward is the RM's score at EOS (or the labellers'), a
missing-EOS penalty, −β·KL to the SFT model on every token; GAE over a critic initialised from the RM; whitened
advantages; several epochs of clipped policy and value updates per batch → evaluate base and policy on held-out
problems. Every iteration reports the RM score *and* the true accuracy: a score that rises while accuracy falls is
reward over-optimisation, and the report shows it.
"""
from __future__ import annotations

from prefect import flow
from pydantic import Field

from flows.base import FlowResult, finish_run, start_run
from flows.evaluate import evaluate_model
from flows.grpo import OnlineFlowConfig
from flows.policy import pretrained_start, sft_base
from flows.reward_model import RewardModelData, train_rm_on_policy
from ray_cluster.rl_config import AlgorithmConfig, OnlineRLConfig, RLOptimConfig
from tasks.evaluation.headline import Headline
from tasks.training.online_rl import OnlineRLStart, train_online

# InstructGPT / N+ details: GAE (γ 1, λ 0.95), k1 KL in the reward, whitened advantages, EOS penalty, 4 epochs
PPO_ALGORITHM = AlgorithmConfig(advantage="gae", aggregation="token_mean", kl_in="reward", kl_estimator="k1",
                                kl_coef=0.05, whiten_advantages=True, missing_eos_penalty=-1.0)


class PPOConfig(OnlineFlowConfig):
    title: str = "PPO on tiny-arith"
    rl: OnlineRLConfig = OnlineRLConfig(algorithm=PPO_ALGORITHM, optim=RLOptimConfig(epochs=4, minibatches=2))
    reward_model: RewardModelData | None = Field(
        default=None, description="InstructGPT's chain: train an RM on the SFT policy's samples and use its score "
        "as the reward (the critic starts from it); None: the labellers' reward, critic from the SFT model")


HEADLINE = Headline(method="ppo", baselines=("base",), label="PPO")


@flow(name="ppo", log_prints=True)
def ppo(cfg: PPOConfig) -> FlowResult:
    ctx = start_run(cfg)
    start = sft_base(cfg, ctx) if cfg.sft_first else pretrained_start(cfg, ctx)
    rm = train_rm_on_policy(start, cfg.reward_model, ctx)[0] if cfg.reward_model is not None else None
    policy = train_online("ppo", OnlineRLStart(policy=start.base, problems=start.problems, reward_model=rm,
                                               test_split=cfg.eval.greedy.split), cfg.rl, cfg.label, ctx)
    models = {"base": start.base, "ppo": policy}
    scores = {name: evaluate_model(name, model, start.problems, cfg.eval, ctx) for name, model in models.items()}
    return finish_run("ppo", cfg, ctx, scores, outputs=models | ({"reward_model": rm} if rm else {}),
                      headline=HEADLINE)
