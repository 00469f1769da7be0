"""Scoring labelled samples: pass@1 (greedy) and maj@K (majority vote over K samples), with 95% intervals."""
from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path
from typing import Literal

from prefect import task
from prefect.cache_policies import NONE
from pydantic import BaseModel, ConfigDict

from tasks.intervals import wilson_ci95
from tasks.stage_cache import StageContext, run_stage
from tasks.store import ArtifactRef
from tasks.tables import read_rows, write_rows


def first_sample_correct(samples: list[dict]) -> bool:
    """pass@1 with one (greedy) sample per prompt."""
    return bool(min(samples, key=lambda s: s["sample_index"])["correct"])


def majority_vote_correct(samples: list[dict]) -> bool:
    """maj@K: the most common extracted answer wins (ties go to the earliest sample); unanswered votes don't count."""
    votes = [s for s in sorted(samples, key=lambda s: s["sample_index"]) if s["pred"] is not None]
    if not votes:
        return False
    counts = Counter(s["pred"] for s in votes)
    best = max(counts.values())
    winner = next(s for s in votes if counts[s["pred"]] == best)
    return bool(winner["correct"])


SCORERS = {"pass@1": first_sample_correct, "maj": majority_vote_correct}


class ScoreConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    metric: Literal["pass@1", "maj"] = "pass@1"


def score(rows: list[dict], metric: str) -> tuple[dict, list[dict]]:
    groups: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        groups[row["prompt_id"]].append(row)
    per_problem = [{"prompt_id": pid, "correct": SCORERS[metric](group), "samples": len(group)}
                   for pid, group in sorted(groups.items())]
    hits = sum(p["correct"] for p in per_problem)
    lo, hi = wilson_ci95(hits, len(per_problem))
    k = max((p["samples"] for p in per_problem), default=0)
    summary = {"metric": metric if metric == "pass@1" else f"maj@{k}", "n": len(per_problem), "correct": hits,
               "accuracy": hits / len(per_problem) if per_problem else 0.0, "ci95": [lo, hi]}
    return summary, per_problem


@task(name="score_accuracy", retries=1, cache_policy=NONE, task_run_name="score_accuracy[{name}]")
def score_accuracy(name: str, labels: ArtifactRef, cfg: ScoreConfig, ctx: StageContext) -> ArtifactRef:
    """per_problem.parquet plus the summary (accuracy, 95% CI) in the manifest's metrics."""

    def compute(out: Path) -> dict:
        summary, per_problem = score(read_rows(ctx.open_store(), labels, "labels"), cfg.metric)
        write_rows(out / "per_problem.parquet", per_problem)
        return summary

    return run_stage(ctx, "score_accuracy", cfg, {"labels": labels}, compute)
