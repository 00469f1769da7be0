"""Rejection sampling fine-tuning (Yuan et al. 2023, "Scaling Relationship on Learning Mathematical Reasoning").

SFT a base model → sample K completions per training problem → label by answer → keep correct completions
with distinct calculation paths → SFT on original + selected data from the base's own starting point →
evaluate base, RFT and a compute-matched control (base trained further on the original data for as many steps).
"""
from __future__ import annotations

import os
import time

from prefect import flow
from pydantic import BaseModel, ConfigDict, Field

from flows.evaluate import EvalConfig, evaluate_model
from ray_cluster.connect import RayConfig
from ray_cluster.generation import SamplingSpec
from tasks.generation.generate import GenerateConfig, sample_completions
from tasks.labelling.label import LabelConfig, label_rewards
from tasks.data.prepare import TinyArithConfig, TokenizerConfig, build_tokenizer, make_tiny_arith
from tasks.evaluation.report import ReportInputs, write_report
from tasks.selection.select import SelectConfig, select_samples
from tasks.core.stage_cache import StageContext
from tasks.core.store import ArtifactRef, StoreSpec
from tasks.training.train import SFTConfig, SFTSource, train_sft


class RFTConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    title: str = "RFT on tiny-arith"
    store: StoreSpec = StoreSpec(url=os.environ.get("WINNOW_STORE", ".winnow/store"))
    ray: RayConfig = RayConfig()
    show_progress: bool = True
    data: TinyArithConfig = TinyArithConfig()
    tokenizer: TokenizerConfig = TokenizerConfig()
    base_sft: SFTConfig = SFTConfig()
    sample: GenerateConfig = GenerateConfig(split="train", sampling=SamplingSpec(n=16, temperature=0.7))
    label: LabelConfig = LabelConfig(split="train")
    select: SelectConfig = SelectConfig()
    rft_sft: SFTConfig = Field(default=SFTConfig(), description="SFT on original + selected, from the base's init; "
                               "the control continues the base for the same number of steps")
    rounds: int = Field(default=1, ge=1, description="sample → select → retrain rounds (pooling all rounds)")
    pool_seeds: list[int] = Field(default_factory=list, description="RFT-U: extra base models (these init seeds) "
                                  "whose samples are pooled with the base's in round 1")
    eval: EvalConfig = EvalConfig()


class RFTResult(BaseModel):
    report: ArtifactRef
    report_uri: str
    scores: dict[str, dict[str, ArtifactRef]]
    wall_s: float


@flow(name="rft", log_prints=True)
def rft(cfg: RFTConfig) -> RFTResult:
    started = time.time()
    ctx = StageContext.for_run(cfg.store, cfg.ray, cfg.show_progress)
    problems = make_tiny_arith(cfg.data, ctx)
    tokenizer = build_tokenizer(problems, cfg.tokenizer, ctx)
    original = SFTSource(ref=problems, split="train")
    base = train_sft("base", [original], tokenizer, None, cfg.base_sft, ctx)
    stages = {"make_tiny_arith": problems, "build_tokenizer": tokenizer, "train_sft[base]": base}
    samplers = {"base": base} | {
        f"base-seed{seed}": train_sft(f"base-seed{seed}", [original], tokenizer, None,
                                      cfg.base_sft.model_copy(update={"init_seed": seed}), ctx)
        for seed in cfg.pool_seeds}

    policy, pooled_labels, selections = base, [], []
    for r in range(1, cfg.rounds + 1):
        samples = sample_completions(f"round{r}", problems, samplers, cfg.sample, ctx)
        pooled_labels.append(label_rewards(f"round{r}", samples, problems, cfg.label, ctx))
        selections.append(select_samples(pooled_labels, problems, cfg.select, ctx))
        selected = SFTSource(ref=selections[-1], split="selected")
        policy = train_sft(f"rft{r}", [original, selected], tokenizer, None, cfg.rft_sft, ctx)
        samplers = {f"rft{r}": policy}
        stages |= {f"sample[round{r}]": samples, f"label[round{r}]": pooled_labels[-1],
                   f"select[round{r}]": selections[-1], f"train_sft[rft{r}]": policy}

    control = train_sft("control", [original], tokenizer, base, cfg.rft_sft, ctx)
    stages["train_sft[control]"] = control
    models = {"base": base, "rft": policy, "control": control}
    evaluations = {name: evaluate_model(name, model, problems, cfg.eval, ctx) for name, model in models.items()}
    scores = {name: evaluation.scores for name, evaluation in evaluations.items()}
    stages |= {label: ref for evaluation in evaluations.values() for label, ref in evaluation.stages.items()}
    report = write_report(ReportInputs(title=cfg.title, scores=scores, selections=selections, stages=stages), ctx)
    report_uri = f"{report.uri}/report.md"
    print(f"report: {report_uri}")
    return RFTResult(report=report, report_uri=report_uri, scores=scores, wall_s=time.time() - started)
