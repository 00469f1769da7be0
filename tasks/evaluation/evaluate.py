"""Scoring labelled samples: greedy pass@1, maj@K, unbiased pass@k, with 95% intervals and per-group breakdowns."""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Callable

from prefect import task
from prefect.cache_policies import NONE
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator

from models.registry import Registry

from tasks.evaluation.metrics import accuracy_summary, breakdown, first_sample_correct, majority_vote_correct, pass_at_k
from tasks.core.stage_cache import StageContext, run_stage
from tasks.core.store import ArtifactRef
from tasks.core.tables import read_rows, write_rows


@dataclass(frozen=True)
class Metric:
    """A per-problem score over its labelled samples, and the metric's display name (K: samples per problem)."""

    problem_score: Callable[[list[dict], int], float]  # (samples, cfg.k) -> score of one problem
    display: Callable[[int, int], str]  # (K, cfg.k) -> e.g. "maj@8"


METRICS = Registry("metric")
METRICS["pass@1"] = Metric(lambda samples, k: float(first_sample_correct(samples)), lambda big_k, k: "pass@1")
METRICS["maj"] = Metric(lambda samples, k: float(majority_vote_correct(samples)), lambda big_k, k: f"maj@{big_k}")
# Codex's unbiased estimator from n samples with c correct
METRICS["pass@k"] = Metric(lambda samples, k: pass_at_k(len(samples), sum(bool(s["correct"]) for s in samples), k),
                           lambda big_k, k: f"pass@{k}")


# a list of field names, also written as one name (`breakdown: level`) or null (none)
FieldList = Annotated[list[str], BeforeValidator(lambda v: [v] if isinstance(v, str) else [] if v is None else v)]


class ScoreConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    metric: str = Field(default="pass@1", description="a registered metric (METRICS): pass@1, maj, pass@k")
    k: int = Field(default=1, ge=1, description="k of pass@k (needs >= k samples per problem)")
    breakdown: FieldList = Field(default_factory=list, description="problem fields to break accuracy down by "
                                 "(MATH: level, subject)")
    scored_by: str | None = Field(default=None, description="the labeller, named in the metric when it is not "
                                  "the evaluation's main one (e.g. pass@1 [gsm8k_strict])")

    @field_validator("metric")
    @classmethod
    def _known(cls, name: str) -> str:
        METRICS.lookup(name)
        return name


def problem_score(samples: list[dict], cfg: ScoreConfig) -> float:
    """One problem's score under the metric: 0/1 for pass@1 and maj, the unbiased estimate for pass@k."""
    return METRICS[cfg.metric].problem_score(samples, cfg.k)


def score(rows: list[dict], cfg: ScoreConfig, problems: dict[str, dict] | None = None) -> tuple[dict, list[dict]]:
    groups: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        groups[row["prompt_id"]].append(row)
    per_problem = []
    for pid, group in sorted(groups.items()):
        value = problem_score(group, cfg)
        extra = {field: (problems or {}).get(pid, {}).get(field) for field in cfg.breakdown}
        per_problem.append({"prompt_id": pid, "score": value, "correct": value >= 1.0, "samples": len(group)} | extra)
    k = max((p["samples"] for p in per_problem), default=0)
    name = METRICS[cfg.metric].display(k, cfg.k) + (f" [{cfg.scored_by}]" if cfg.scored_by else "")
    summary = accuracy_summary([p["score"] for p in per_problem], name)
    for field in cfg.breakdown:
        summary["by_" + field] = breakdown(per_problem, field)
    return summary, per_problem


@task(name="score_accuracy", retries=1, cache_policy=NONE, task_run_name="score_accuracy[{name}]")
def score_accuracy(name: str, labels: ArtifactRef, cfg: ScoreConfig, ctx: StageContext,
                   problems: ArtifactRef | None = None, split: str = "test") -> ArtifactRef:
    """per_problem.parquet plus the summary (accuracy, 95% CI, breakdown) in the manifest's metrics."""
    if cfg.breakdown and problems is None:
        raise ValueError(f"score.breakdown={cfg.breakdown!r} needs the problems artifact")

    def compute(out: Path) -> dict:
        store = ctx.open_store()
        by_id = {r["id"]: r for r in read_rows(store, problems, split)} if problems is not None else None
        summary, per_problem = score(read_rows(store, labels, "labels"), cfg, by_id)
        write_rows(out / "per_problem.parquet", per_problem)
        return summary

    inputs = {"labels": labels} | ({"problems": problems} if problems is not None else {})
    return run_stage(ctx, "score_accuracy", cfg, inputs, compute)
