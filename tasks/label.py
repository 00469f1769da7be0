"""Labelling: a reward for every sample, from a labeller picked by name (answer check now; tests, RMs later)."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from prefect import task
from prefect.cache_policies import NONE
from pydantic import BaseModel, ConfigDict, Field

from tasks.answers import answers_match, calc_path_grounded, extract_calc_path, extract_final_answer
from tasks.stage_cache import StageContext, run_stage
from tasks.store import ArtifactRef
from tasks.tables import read_rows, write_rows

Labeller = Callable[[str, dict], dict]
LABELLERS: dict[str, Labeller] = {}


def register_labeller(name: str):
    def wrap(fn: Labeller) -> Labeller:
        LABELLERS[name] = fn
        return fn
    return wrap


@register_labeller("math_answer")
def label_math_answer(completion: str, problem: dict) -> dict:
    """Reward 1 when the `####` answer equals the reference (math-verify equivalence), else 0.

    Also records the calculation path (the `<<...>>` equations), which RFT de-duplicates on (Yuan et al. 2023).
    """
    predicted = extract_final_answer(completion)
    correct = answers_match(predicted, problem["final"])
    path = extract_calc_path(completion)
    # The written solution's path is already in the SFT data: selection counts it as kept (RFT, Sec. 4).
    reference, question = problem.get("answer"), problem.get("question")
    return {"pred": predicted, "correct": correct, "reward": float(correct), "calc_path": list(path),
            "reference_calc_path": list(extract_calc_path(reference)) if isinstance(reference, str) else None,
            "grounded": calc_path_grounded(path, question) if isinstance(question, str) else None}


class LabelConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    labeller: str = Field(default="math_answer", description=f"one of the registered labellers")
    split: str = "train"


@task(name="label_rewards", retries=1, cache_policy=NONE, task_run_name="label_rewards[{name}]")
def label_rewards(
    name: str, samples: ArtifactRef, problems: ArtifactRef, cfg: LabelConfig, ctx: StageContext
) -> ArtifactRef:
    """labels.parquet: every sample row plus pred, correct, reward, calc_path (and error for unlabellable rows)."""
    if cfg.labeller not in LABELLERS:
        raise KeyError(f"label.labeller={cfg.labeller!r} is not registered; known: {sorted(LABELLERS)}")
    labeller = LABELLERS[cfg.labeller]

    def compute(out: Path) -> dict:
        store = ctx.open_store()
        by_id = {row["id"]: row for row in read_rows(store, problems, cfg.split)}
        labelled, errors = [], 0
        for index, row in enumerate(read_rows(store, samples, "samples")):
            problem = by_id.get(row["prompt_id"])
            try:
                if problem is None:
                    raise KeyError(f"prompt_id {row['prompt_id']!r} not in {problems.short}/{cfg.split}")
                # a row generation could not produce (e.g. over-long prompt) keeps its reason
                label = labeller(row["text"], problem) | {"error": row.get("error")}
            except Exception as exc:  # one bad row is recorded with its reason, never fatal to the stage
                errors += 1
                label = {"pred": None, "correct": False, "reward": 0.0, "calc_path": [],
                         "reference_calc_path": None, "grounded": None,
                         "error": f"row {index}: {type(exc).__name__}: {exc}"}
            labelled.append(row | label)
        write_rows(out / "labels.parquet", labelled)
        n_correct = sum(r["correct"] for r in labelled)
        return {"rows": len(labelled), "correct": n_correct, "errors": errors,
                "accuracy": n_correct / len(labelled) if labelled else 0.0}

    return run_stage(ctx, "label_rewards", cfg, {"samples": samples, "problems": problems}, compute)
