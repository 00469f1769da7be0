"""Code problems with unit tests, as train / test tables (id, prompt, completion, test, entry_point): the
embedded tiny-code task, or HumanEval (split in two halves by a seeded shuffle, since it has no train split)."""
from __future__ import annotations

import random
from pathlib import Path
from typing import Literal

from prefect import task
from prefect.cache_policies import NONE
from pydantic import BaseModel, ConfigDict, Field

from tasks.core.stage_cache import StageContext, run_stage
from tasks.core.records import CODE_PROBLEMS
from tasks.core.tables import write_records
from tasks.core.store import ArtifactRef


class CodeDataConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    source: Literal["tiny_code", "humaneval"] = "tiny_code"
    seed: int = 0
    n_train: int = Field(default=400, ge=1, description="tiny_code: problems to train on")
    n_test: int = Field(default=150, ge=1, description="tiny_code: held-out problems")
    humaneval_train_fraction: float = Field(default=0.5, gt=0, lt=1,
                                            description="humaneval: share of the 164 problems used for training")


@task(name="make_code_problems", retries=1, cache_policy=NONE)
def make_code_problems(cfg: CodeDataConfig, ctx: StageContext) -> ArtifactRef:
    """train.parquet / test.parquet; test problems never share a prompt with train ones."""

    def compute(out: Path) -> dict:
        if cfg.source == "tiny_code":
            from tasks.data.tiny_code import generate_tiny_code

            train, test = generate_tiny_code(cfg.seed, cfg.n_train, cfg.n_test)
        else:
            from tasks.data.humaneval import read_humaneval

            rows = read_humaneval()
            random.Random(cfg.seed).shuffle(rows)
            cut = round(len(rows) * cfg.humaneval_train_fraction)
            train, test = rows[:cut], rows[cut:]
        overlap = {r["prompt"] for r in train} & {r["prompt"] for r in test}
        if overlap:
            raise ValueError(f"{len(overlap)} test prompts also occur in train")
        return {"train_rows": write_records(out / "train.parquet", train, CODE_PROBLEMS),
                "test_rows": write_records(out / "test.parquet", test, CODE_PROBLEMS)}

    reads = None
    if cfg.source != "tiny_code":
        from tasks.data.humaneval import humaneval_file

        reads = {"humaneval": str(humaneval_file())}
    return run_stage(ctx, "make_code_problems", cfg, {}, compute, reads=reads)
