"""Direct Preference Optimization (Rafailov et al. 2023, "Direct Preference Optimization: Your Language Model is
Secretly a Reward Model").

SFT base → sample K completions per training problem from it → label by answer → preference pairs (a correct vs
an incorrect completion of one problem) → the SFT model's log-probs of every pair, computed once (it is the
reference π_ref) → DPO from the SFT model → evaluate the SFT base, the DPO model and a compute-matched control
(SFT on each prompt's chosen response with DPO's steps and optimiser: DPO without its preference term, so a gain
over it is the rejected answers' and not more training of the base).
"""
from __future__ import annotations

from prefect import flow
from pydantic import Field, model_validator

from flows.base import FlowResult, finish_run, start_run
from flows.controls import matched_sft
from flows.evaluate import EvalConfig, evaluate_model
from flows.policy import PolicyFlowConfig, sft_base
from ray_cluster.generation import SamplingSpec
from tasks.generation.generate import GenerateConfig, sample_completions
from tasks.labelling.label import LabelConfig, label_rewards
from tasks.selection.preferences import PreferenceConfig, make_preferences
from tasks.training.train import DPOTrainConfig, SFTSource, train_sft
from tasks.training.train_preference import reference_logprobs, train_dpo
from tasks.evaluation.headline import Headline


class DPOFlowConfig(PolicyFlowConfig):
    title: str = "DPO on tiny-arith"
    sample: GenerateConfig = GenerateConfig(split="train", sampling=SamplingSpec(n=8, temperature=1.0))
    label: LabelConfig = LabelConfig(split="train")
    preferences: PreferenceConfig = Field(default=PreferenceConfig(heldout_fraction=0.0), description="DPO "
                                          "trains on pairs_train; held-out prompts (pairs_test) are not used")
    dpo: DPOTrainConfig = Field(default=DPOTrainConfig(optim={"steps": 150, "lr": 3e-4}),
                                description="DPO from the SFT base, which is also the reference model")
    eval: EvalConfig = EvalConfig()

    @model_validator(mode="after")
    def _samples_can_make_pairs(self):
        # a pair is a correct and an incorrect completion of one problem: settings that can never give one
        # fail here, not after sampling
        sampling = self.sample.sampling
        if sampling.n < 2:
            raise ValueError(f"sample.sampling.n={sampling.n}: a preference pair needs a correct and an incorrect "
                             "completion of one problem, so at least 2 samples per problem")
        if sampling.temperature == 0:
            raise ValueError("sample.sampling.temperature=0: greedy decoding gives K identical completions of a "
                             "problem, never a correct and an incorrect one; sample at temperature > 0")
        for field, split in (("label.split", self.label.split), ("preferences.split", self.preferences.split)):
            if split != self.sample.split:
                raise ValueError(f"{field}={split!r} but sample.split={self.sample.split!r}: the samples are "
                                 f"answers to the {self.sample.split!r} problems")
        return self


HEADLINE = Headline(method="dpo", baselines=("base", "control"), label="DPO")


@flow(name="dpo", log_prints=True)
def dpo(cfg: DPOFlowConfig) -> FlowResult:
    ctx = start_run(cfg)
    start = sft_base(cfg, ctx, probe=(cfg.sample, cfg.label))
    problems, tokenizer, sft = start.problems, start.tokenizer, start.base
    samples = sample_completions("dpo-data", problems, {"base": sft}, cfg.sample, ctx)
    labels = label_rewards("dpo-data", samples, problems, cfg.label, ctx)
    pairs = make_preferences("dpo", labels, problems, cfg.preferences, ctx)
    reference = reference_logprobs("base", pairs, sft, ctx, max_len=cfg.dpo.optim.max_len)
    tuned = train_dpo("dpo", pairs, reference, tokenizer, sft, cfg.dpo, ctx)
    control = train_sft("dpo-control", [SFTSource(ref=pairs, split="best_train")], tokenizer, sft,
                        matched_sft(cfg.dpo), ctx)
    models = {"base": sft, "dpo": tuned, "control": control}
    scores = {name: evaluate_model(name, model, problems, cfg.eval, ctx) for name, model in models.items()}
    return finish_run("dpo", cfg, ctx, scores, outputs=models | {"preferences": pairs, "reference": reference},
                      headline=HEADLINE)
