"""Evaluation as a sub-flow: greedy pass@1, maj@K and unbiased pass@K of one model on the held-out split."""
from __future__ import annotations

from prefect import flow
from pydantic import BaseModel, ConfigDict, Field, field_validator

from flows.base import FlowConfig, FlowResult, finish_run
from ray_cluster.generation import SamplingSpec
from tasks.evaluation.evaluate import FieldList, ScoreConfig, score_accuracy
from tasks.generation.generate import GenerateConfig, sample_completions
from tasks.labelling.label import LabelConfig, LabellerSpec, label_rewards
from tasks.labelling.labellers import answers_vote
from tasks.core.stage_cache import StageContext
from tasks.core.store import ArtifactRef


class EvalConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    greedy: GenerateConfig = GenerateConfig(split="test", sampling=SamplingSpec(n=1, temperature=0.0))
    maj: GenerateConfig | None = Field(
        default=GenerateConfig(split="test", sampling=SamplingSpec(n=8, temperature=0.7)),
        description="K samples per test problem for maj@K; null to skip",
    )
    label: LabelConfig = LabelConfig(split="test")
    rescore: list[str] = Field(default_factory=list, description="other labellers whose pass@1 on the same greedy "
                               "samples is reported too (GSM8K: gsm8k_strict, gsm8k_flexible)")
    breakdown: FieldList = Field(default_factory=list, description="problem fields to break scores down by (MATH: "
                                 "level, subject)")

    def greedy_only(self) -> "EvalConfig":
        return self.model_copy(update={"maj": None, "rescore": []})

    @field_validator("rescore")
    @classmethod
    def _registered(cls, names: list[str]) -> list[str]:
        if names:  # an unknown labeller fails here, naming the known ones, not after sampling
            LabelConfig(labellers=[LabellerSpec(name=n) for n in names])
        return names


@flow(name="evaluate-model", log_prints=True)
def evaluate_model(name: str, model: ArtifactRef, problems: ArtifactRef, cfg: EvalConfig,
                   ctx: StageContext) -> dict[str, ArtifactRef]:
    """Greedy pass@1 and, if configured, maj@K and pass@K (Codex's unbiased estimator) from K samples: metric
    ('pass@1' / 'maj' / 'pass@k') -> score artifact (accuracy and its 95% CI)."""
    split = cfg.label.split

    def scored(metric: str, labels: ArtifactRef, key: str | None = None, **kw) -> ArtifactRef:
        score_cfg = ScoreConfig(metric=metric, breakdown=cfg.breakdown, **kw)
        return score_accuracy(f"{name}-{key or metric}", labels, score_cfg, ctx, problems, split)

    greedy = sample_completions(f"{name}-greedy", problems, {name: model}, cfg.greedy, ctx)
    greedy_labels = label_rewards(f"{name}-greedy", greedy, problems, cfg.label, ctx)
    scores = {"pass@1": scored("pass@1", greedy_labels)}
    for labeller in cfg.rescore:  # the same samples under another scoring convention
        other = cfg.label.model_copy(update={"labellers": [LabellerSpec(name=labeller)]})
        labels = label_rewards(f"{name}-greedy-{labeller}", greedy, problems, other, ctx)
        scores[f"pass@1[{labeller}]"] = scored("pass@1", labels, f"pass@1-{labeller}", scored_by=labeller)
    if cfg.maj is not None:
        voted = sample_completions(f"{name}-maj", problems, {name: model}, cfg.maj, ctx)
        labels = label_rewards(f"{name}-maj", voted, problems, cfg.label, ctx)
        if answers_vote([spec.name for spec in cfg.label.labellers]):  # unit tests have no answer to vote on
            scores["maj"] = scored("maj", labels)
        scores["pass@k"] = scored("pass@k", labels, k=cfg.maj.sampling.n)
    return scores


def evaluate_and_report(flow: str, cfg: FlowConfig, ctx: StageContext, name: str, model: ArtifactRef,
                        problems: ArtifactRef, outputs: dict[str, ArtifactRef] | None = None) -> FlowResult:
    """The ending of every evaluation-only flow: one model's scores, then the report."""
    scores = {name: evaluate_model(name, model, problems, cfg.eval, ctx)}
    return finish_run(flow, cfg, ctx, scores, outputs={"model": model, "problems": problems} | (outputs or {}))
