"""Process supervision without people (Math-Shepherd, Wang et al. 2024), judged as "Let's Verify Step by Step"
(Lightman et al. 2023) judges it: training problems split, a share kept from the policy → SFT policy on the rest →
K samples per kept problem (errors like the ones it makes on new problems), labelled by answer → the outcome
RM those samples train (InstructGPT, as flows/reward_model.py) → each solution cut into steps, N completions
from every step's prefix, step labels hard (any correct) and soft (share correct) → a PRM from the policy, BCE at
every step end → its step accuracy on held-out solutions → best-of-N on held-out problems picked by the PRM, by
the outcome RM and by majority vote, on the same samples, beside the policy's greedy accuracy. The PRM plugs into
the label stage as `labellers: [{name: process_reward}]` (any recipe, online RL included)."""
from __future__ import annotations

from prefect import flow
from pydantic import BaseModel, ConfigDict, Field, model_validator

from flows.base import FlowResult, finish_run, start_run
from flows.evaluate import EvalConfig, evaluate_model
from flows.policy import PolicyFlowConfig, load_problems, sft_base
from flows.reward_model import RewardModelData, train_rm_on_policy
from models.methods.prm import PRMTrainConfig
from ray_cluster.generation import SamplingSpec
from tasks.data.holdout import HoldoutConfig, hold_out_problems
from tasks.evaluation.verifiers import VerifierRerankConfig, rerank_verifiers  # (and its report sections)
from tasks.generation.generate import GenerateConfig, sample_completions
from tasks.labelling.label import LabelConfig, label_rewards
from tasks.selection.preferences import PreferenceConfig
from tasks.labelling.process_labels import ProcessLabelConfig, process_labels, step_prompts
from tasks.training.train_process import evaluate_prm, train_prm
from tasks.training.train_preference import evaluate_reward_model


class VerifierBestOfN(BaseModel):
    model_config = ConfigDict(extra="forbid")
    sample: GenerateConfig = GenerateConfig(split="test", sampling=SamplingSpec(n=16, temperature=0.7))
    label: LabelConfig = LabelConfig(split="test")
    rerank: VerifierRerankConfig = VerifierRerankConfig()


VERIFIER = "verifier"  # the table of training problems the policy never sees (tasks/data/holdout.py)


class ProcessRewardConfig(RewardModelData, PolicyFlowConfig):
    title: str = "Process reward model (Math-Shepherd) on tiny-arith"
    holdout: HoldoutConfig = Field(default=HoldoutConfig(), description="training problems kept from the policy, "
                                   "where both verifiers' solutions are sampled")
    sample: GenerateConfig = GenerateConfig(split=VERIFIER, sampling=SamplingSpec(n=8, temperature=1.0))
    label: LabelConfig = LabelConfig(split=VERIFIER)
    preferences: PreferenceConfig = PreferenceConfig(split=VERIFIER)
    process: ProcessLabelConfig = ProcessLabelConfig(split=VERIFIER)
    rollouts: GenerateConfig = Field(default=GenerateConfig(split=VERIFIER, sampling=SamplingSpec(
        n=8, temperature=0.7)), description="the completer: N completions from every step's prefix")
    prm: PRMTrainConfig = PRMTrainConfig(optim={"steps": 300, "lr": 5e-4})
    best_of_n: VerifierBestOfN = VerifierBestOfN()
    eval: EvalConfig = Field(default=EvalConfig(maj=None), description="the policy's greedy accuracy")

    @model_validator(mode="after")
    def _verifier_data_on_held_out_problems(self):
        # a verifier trained on the policy's own training problems sees memorised answers, not its errors
        for field in ("sample", "label", "preferences", "process", "rollouts"):
            if getattr(self, field).split != VERIFIER:
                raise ValueError(f"{field}.split must be {VERIFIER!r} (the problems the policy never trains on), "
                                 f"got {getattr(self, field).split!r}")
        return self


@flow(name="process-reward", log_prints=True)
def process_reward(cfg: ProcessRewardConfig) -> FlowResult:
    ctx = start_run(cfg)
    problems = hold_out_problems("verifiers", load_problems(cfg, ctx), cfg.holdout, ctx)
    start = sft_base(cfg, ctx, problems)
    problems, policy = start.problems, start.base
    orm, comparisons, solutions = train_rm_on_policy(start, cfg, ctx)
    orm_heldout = evaluate_reward_model("orm", orm, comparisons, ctx)
    prompts = step_prompts("prm", solutions, problems, cfg.process, ctx)
    completions = sample_completions("prm-completions", prompts, {"base": policy}, cfg.rollouts, ctx)
    verdicts = label_rewards("prm-completions", completions, prompts, cfg.label, ctx)
    steps = process_labels("prm", prompts, verdicts, cfg.process, ctx)
    prm = train_prm("prm", steps, start.tokenizer, policy, cfg.prm, ctx)
    heldout = evaluate_prm("prm", prm, steps, ctx)
    samples = sample_completions("verifiers", problems, {"base": policy}, cfg.best_of_n.sample, ctx)
    labels = label_rewards("verifiers", samples, problems, cfg.best_of_n.label, ctx)
    best = rerank_verifiers("verifiers", labels, problems, prm, orm, cfg.best_of_n.rerank, ctx)
    scores = {"base": evaluate_model("base", policy, problems, cfg.eval, ctx),
              "verifiers": {"PRM held-out steps": heldout, "outcome RM held-out pairs": orm_heldout,
                            "best-of-n (PRM)": best}}
    return finish_run("process_reward", cfg, ctx, scores,
                      outputs={"prm": prm, "orm": orm, "steps": steps, "best_of_n": best})
