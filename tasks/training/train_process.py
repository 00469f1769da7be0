"""Training and checking a process reward model (Math-Shepherd): the PRM from the policy's folder on the
`steps_train` labels, and how often its step verdicts agree with held-out labels (`steps_test`)."""
from __future__ import annotations

from pathlib import Path

from prefect import task
from prefect.cache_policies import NONE

from models.methods.prm import PRMTrainConfig
from ray_cluster.connect import ensure_ray
from ray_cluster.reward_scorer import StepScoreRequest, score_on_ray
from tasks.core.stage_cache import StageContext, run_stage
from tasks.core.store import ArtifactRef
from tasks.core.tables import read_rows, write_rows
from tasks.evaluation.intervals import wilson_ci95
from tasks.training.train import fit_stage


@task(name="train_prm", retries=1, cache_policy=NONE, task_run_name="train_prm[{name}]")
def train_prm(name: str, steps: ArtifactRef, tokenizer: ArtifactRef, init: ArtifactRef | None, cfg: PRMTrainConfig,
              ctx: StageContext) -> ArtifactRef:
    """A PRM (value head at every step end, BCE on the configured labels) started from the policy `init`."""
    inputs = {"steps": steps, "tokenizer": tokenizer} | ({"init": init} if init else {})
    return fit_stage(name, "train_prm", "prm", inputs, tokenizer, init, cfg, ctx)


def step_agreement(rows: list[dict], scored: dict[int, list[float]], labels: str = "hard") -> list[dict]:
    """One row per step: the PRM's probability, its verdict (≥ 0.5) and whether it matches the label (≥ 0.5)."""
    out = []
    for i, row in enumerate(rows):
        for k, p in enumerate(scored.get(i, [])):
            label = float(row[labels][k])
            out.append({"prompt_id": row["prompt_id"], "sample_index": row["sample_index"], "step": k,
                        "probability": p, "label": label, "agree": (p >= 0.5) == (label >= 0.5)})
    return out


@task(name="evaluate_prm", retries=1, cache_policy=NONE, task_run_name="evaluate_prm[{name}]")
def evaluate_prm(name: str, model: ArtifactRef, steps: ArtifactRef, ctx: StageContext,
                 table: str = "steps_test", max_len: int = 1024) -> ArtifactRef:
    """Step accuracy on held-out solutions: how often the PRM's verdict matches the step's hard label."""

    def compute(out: Path) -> dict:
        store = ctx.open_store()
        rows = read_rows(store, steps, table)
        ensure_ray(ctx.ray)
        results = score_on_ray(store.folder(model), [StepScoreRequest(i, r["prompt"], tuple(r["steps"]))
                                                     for i, r in enumerate(rows)],
                               batch_size=32, max_len=max_len, num_scorers=1, cpus_per_scorer=1, use_gpu=False,
                               method="score_steps")
        scored = step_agreement(rows, {r.row_index: list(r.step_scores) for r in results})
        write_rows(out / "steps_scored.parquet", scored)
        hits = sum(r["agree"] for r in scored)
        return {"metric": "step accuracy", "n": len(scored), "correct": hits,
                "accuracy": hits / len(scored) if scored else 0.0, "ci95": list(wilson_ci95(hits, len(scored)))}

    return run_stage(ctx, "evaluate_prm", {"table": table, "max_len": max_len}, {"model": model, "steps": steps},
                     compute)
