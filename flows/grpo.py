"""GRPO (Shao et al. 2024, DeepSeekMath) and its critic-free family, online.

SFT base → for each iteration: G samples per prompt on the long-lived engines → rewards from the registered
labellers → group-relative advantages → clipped policy update with a k3 KL loss to the frozen SFT model → new
weights into the engines → evaluate base and policy on the held-out problems. RLOO, Dr. GRPO and DAPO are the
same recipe with another registered estimator / aggregation / clip (configs/grpo/*.yaml).
"""
from __future__ import annotations

from prefect import flow
from pydantic import Field, model_validator

from flows.base import FlowResult, finish_run, start_run
from flows.evaluate import EvalConfig
from flows.evaluate import evaluate_model
from flows.policy import PolicyFlowConfig, pretrained_start, sft_base
from ray_cluster.rl_config import OnlineRLConfig
from tasks.evaluation.headline import Headline
from tasks.labelling.label import LabelConfig
from tasks.training.online_rl import OnlineRLStart, train_online


class OnlineFlowConfig(PolicyFlowConfig):
    """The common fields of the online recipes (GRPO, PPO)."""

    rl: OnlineRLConfig = OnlineRLConfig()
    sft_first: bool = Field(default=True, description="SFT the model on the written solutions first (the base); "
                            "false: RL straight from `model:` (an instruct model), as verl's baselines")
    label: LabelConfig = Field(default=LabelConfig(split="train"), description="the reward: any labellers and "
                               "their combination (RLEIF: [math_answer, instruction_reward] with combine: product "
                               "is r = r_I · r_A; a PRM: process_reward)")
    eval: EvalConfig = EvalConfig()

    @model_validator(mode="before")
    @classmethod
    def _recipe_defaults_under_overrides(cls, data):
        # a config's `rl:` section changes the recipe's defaults (PPO's GAE, KL in the reward, ...) field by
        # field, rather than replacing them with OnlineRLConfig's
        if isinstance(data, dict) and isinstance(data.get("rl"), dict):
            default = cls.model_fields["rl"].default.model_dump(exclude_unset=False)
            data = data | {"rl": _merged(default, data["rl"])}
        return data

    @model_validator(mode="after")
    def _a_model_to_start_from(self):
        if not self.sft_first and self.model is None:
            raise ValueError("sft_first: false starts RL from a pretrained model: set `model:` (e.g. {hub: ...})")
        return self


def _merged(base: dict, override: dict) -> dict:
    out = dict(base)
    for key, value in override.items():
        out[key] = _merged(base[key], value) if isinstance(value, dict) and isinstance(base.get(key), dict) else value
    return out


class GRPOConfig(OnlineFlowConfig):
    title: str = "GRPO on tiny-arith"


HEADLINE = Headline(method="grpo", baselines=("base",), label="GRPO")


@flow(name="grpo", log_prints=True)
def grpo(cfg: GRPOConfig) -> FlowResult:
    ctx = start_run(cfg)
    start = sft_base(cfg, ctx) if cfg.sft_first else pretrained_start(cfg, ctx)
    policy = train_online("grpo", OnlineRLStart(policy=start.base, problems=start.problems,
                                                test_split=cfg.eval.greedy.split), cfg.rl, cfg.label, ctx)
    models = {"base": start.base, "grpo": policy}
    scores = {name: evaluate_model(name, model, start.problems, cfg.eval, ctx) for name, model in models.items()}
    return finish_run("grpo", cfg, ctx, scores, outputs=models, headline=HEADLINE)
