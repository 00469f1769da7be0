"""Best-of-N reranking on held-out problems (Cobbe et al. 2021's verifiers; Lightman et al. 2023, "Let's Verify
Step by Step"): for N = 1, 2, 4, … the same K samples per problem are picked from three ways — the one a reward
model scores highest, the majority answer, and an oracle (any correct: pass@N) — so a reward model is judged by
what it is for: choosing a correct answer among a policy's samples."""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from prefect import task
from prefect.cache_policies import NONE
from pydantic import BaseModel, ConfigDict, Field, field_validator

from ray_cluster.connect import ensure_ray
from ray_cluster.reward_scorer import ScoreRequest, score_on_ray
from tasks.core.stage_cache import StageContext, run_stage
from tasks.core.store import ArtifactRef
from tasks.core.tables import read_rows, write_rows
from tasks.evaluation.intervals import wilson_ci95
from tasks.evaluation.metrics import majority_vote_correct


class RerankConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ns: list[int] = Field(default=[1, 2, 4, 8], description="N values of the curves; each at most the samples "
                          "per problem")
    split: str = Field(default="test", description="the problems table the samples answered")
    batch_size: int = Field(default=32, ge=1)
    max_len: int = Field(default=1024, ge=8)
    num_scorers: int = Field(default=1, ge=1)
    cpus_per_scorer: float = Field(default=1, gt=0)
    use_gpu: bool = False

    @field_validator("ns")
    @classmethod
    def _increasing(cls, ns: list[int]) -> list[int]:
        if not ns or any(n < 1 for n in ns) or ns != sorted(set(ns)):
            raise ValueError(f"ns={ns}: give increasing positive N values, e.g. [1, 2, 4, 8]")
        return ns


RM_WAY = {"rm": "score"}  # the one verifier of this stage: way name → the sample field it picks by


def best_of_n(samples: list[dict], n: int, ways: dict[str, str] = RM_WAY) -> dict[str, bool]:
    """One problem's picks among its first `n` samples (by sample_index): per way, the sample with the highest
    value of its field (ties: the first); the majority answer; and whether any is correct."""
    first = sorted(samples, key=lambda s: s["sample_index"])[:n]
    picks = {way: bool(max(first, key=lambda s: (s[field], -s["sample_index"]))["correct"])
             for way, field in ways.items()}
    return picks | {"maj": majority_vote_correct(first), "oracle": any(s["correct"] for s in first)}


def curves(by_prompt: dict[str, list[dict]], ns: list[int], ways: dict[str, str] = RM_WAY) -> list[dict]:
    """Accuracy (with 95% Wilson intervals) of each way of picking, per N, over every problem."""
    k = min(len(s) for s in by_prompt.values())
    if ns[-1] > k:
        raise ValueError(f"rerank.ns goes to {ns[-1]} but some problem has only {k} samples: sample more per "
                         "problem or lower ns")
    rows = []
    for n in ns:
        picks = [best_of_n(samples, n, ways) for samples in by_prompt.values()]
        row = {"n": n, "problems": len(picks)}
        for way in (*ways, "maj", "oracle"):
            hits = sum(p[way] for p in picks)
            row |= {way: hits / len(picks), f"{way}_ci95": list(wilson_ci95(hits, len(picks)))}
        rows.append(row)
    return rows


def labelled_prompts(store, labels: ArtifactRef, problems: ArtifactRef, split: str) -> tuple[dict[str, str], list]:
    """(problem id → prompt, the labelled samples), every sample's problem among the `split` problems."""
    prompts = {r["id"]: r["prompt"] for r in read_rows(store, problems, split)}
    rows = read_rows(store, labels, "labels")
    missing = sorted({r["prompt_id"] for r in rows} - set(prompts))[:3]
    if missing:
        raise ValueError(f"labels {labels.short}: prompt ids {missing} are not in the {split!r} problems")
    return prompts, rows


@task(name="rerank", retries=1, cache_policy=NONE, task_run_name="rerank[{name}]")
def rerank(name: str, labels: ArtifactRef, problems: ArtifactRef, scorer: ArtifactRef, cfg: RerankConfig,
           ctx: StageContext) -> ArtifactRef:
    """Score every labelled sample with the reward model `scorer`, then the best-of-N curves; the manifest's
    accuracy is the reward model's pick at the largest N (a score artifact, so the report tables it)."""

    def compute(out: Path) -> dict:
        store = ctx.open_store()
        prompts, rows = labelled_prompts(store, labels, problems, cfg.split)
        requests = [ScoreRequest(i, prompts[r["prompt_id"]] + (r.get("text") or "")) for i, r in enumerate(rows)]
        ensure_ray(ctx.ray)
        scores = {s.row_index: s.reward for s in score_on_ray(
            store.folder(scorer), requests, batch_size=cfg.batch_size, max_len=cfg.max_len,
            num_scorers=cfg.num_scorers, cpus_per_scorer=cfg.cpus_per_scorer, use_gpu=cfg.use_gpu)}
        by_prompt: dict[str, list[dict]] = defaultdict(list)
        for i, r in enumerate(rows):
            by_prompt[r["prompt_id"]].append({"sample_index": r["sample_index"], "correct": bool(r["correct"]),
                                              "pred": r.get("pred"), "score": scores[i]})
        table = curves(by_prompt, cfg.ns)
        write_rows(out / "curves.parquet", table)
        write_rows(out / "scored.parquet", [{"prompt_id": p, **s} for p, group in by_prompt.items() for s in group])
        last = table[-1]
        return {"metric": f"best-of-{last['n']} (RM)", "n": last["problems"], "accuracy": last["rm"],
                "correct": round(last["rm"] * last["problems"]), "ci95": last["rm_ci95"], "curves": table}

    return run_stage(ctx, "rerank", cfg, {"labels": labels, "problems": problems, "scorer": scorer}, compute)
