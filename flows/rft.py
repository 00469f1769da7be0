"""Rejection sampling fine-tuning (Yuan et al. 2023, "Scaling Relationship on Learning Mathematical Reasoning").

SFT a base model → sample K completions per training problem → label by answer → keep correct completions
with distinct calculation paths → SFT on original + selected data from the base's own starting point →
evaluate base, RFT and a compute-matched control (base trained further on the original data for as many steps).
"""
from __future__ import annotations

from prefect import flow
from pydantic import Field, model_validator

from flows.base import FlowResult, finish_run, start_run
from flows.evaluate import EvalConfig, evaluate_model
from flows.policy import PolicyFlowConfig, sft_base
from ray_cluster.generation import SamplingSpec
from tasks.generation.generate import GenerateConfig, sample_completions
from tasks.labelling.label import LabelConfig, label_rewards
from tasks.selection.select import SelectConfig, check_criteria_fields, select_samples
from tasks.training.train import SFTConfig, SFTSource, train_sft
from tasks.evaluation.headline import Headline


class RFTConfig(PolicyFlowConfig):
    title: str = "RFT on tiny-arith"
    sample: GenerateConfig = GenerateConfig(split="train", sampling=SamplingSpec(n=16, temperature=0.7))
    label: LabelConfig = LabelConfig(split="train")
    select: SelectConfig = SelectConfig()
    rft_sft: SFTConfig = Field(default=SFTConfig(), description="SFT on original + selected, from the base's init; "
                               "the control continues the base for the same number of steps")
    rounds: int = Field(default=1, ge=1, description="sample → select → retrain rounds (pooling all rounds)")
    pool_seeds: list[int] = Field(default_factory=list, description="RFT-U: extra base models (these init seeds) "
                                  "whose samples are pooled with the base's in round 1")
    eval: EvalConfig = EvalConfig()

    @model_validator(mode="after")
    def _criteria_have_their_fields(self):
        # a criterion that reads a field the labeller does not write fails here, not after sampling
        check_criteria_fields(self.select.criteria, self.label.output_schema().names, "label.labellers' labels")
        return self


HEADLINE = Headline(method="rft", baselines=("base", "control"), label="RFT")  # the paper's claim, tested first


@flow(name="rft", log_prints=True)
def rft(cfg: RFTConfig) -> FlowResult:
    ctx = start_run(cfg)
    start = sft_base(cfg, ctx, probe=(cfg.sample, cfg.label))
    problems, tokenizer, original, base = start.problems, start.tokenizer, start.demonstrations, start.base
    samplers = {"base": base} | {
        f"base-seed{seed}": train_sft(f"base-seed{seed}", [original], tokenizer, start.init,
                                      cfg.base_sft.model_copy(update={"init_seed": seed}), ctx)
        for seed in cfg.pool_seeds}

    policies, pooled_labels, selections = [], [], []
    for r in range(1, cfg.rounds + 1):
        samples = sample_completions(f"round{r}", problems, samplers, cfg.sample, ctx)
        pooled_labels.append(label_rewards(f"round{r}", samples, problems, cfg.label, ctx))
        selections.append(select_samples(pooled_labels, problems, cfg.select, ctx))
        selected = SFTSource(ref=selections[-1], split="selected")
        policies.append(train_sft(f"rft{r}", [original, selected], tokenizer, start.init, cfg.rft_sft, ctx))
        samplers = {f"rft{r}": policies[-1]}

    control = train_sft("control", [original], tokenizer, base, cfg.rft_sft, ctx)
    models = {"base": base, "rft": policies[-1], "control": control}
    scores = {name: evaluate_model(name, model, problems, cfg.eval, ctx) for name, model in models.items()}
    # earlier rounds get greedy pass@1 only: does a round add to the one before it (the paper's RFT-U question)?
    scores |= {f"rft{r}": evaluate_model(f"rft{r}", model, problems, cfg.eval.greedy_only(), ctx)
               for r, model in enumerate(policies[:-1], start=1)}
    return finish_run("rft", cfg, ctx, scores, outputs=models | {"selection": selections[-1]}, headline=HEADLINE)
