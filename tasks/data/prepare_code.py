"""Generated code problems with unit tests, as train / test tables (id, prompt, completion, test, entry_point):
the embedded tiny-code task. Code datasets read from files — HumanEval (built-ins `humaneval`, `humaneval_half`)
or your own — go through tasks/data/prepare_dataset.py with `answer_format: tests`."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from prefect import task
from prefect.cache_policies import NONE
from pydantic import BaseModel, ConfigDict, Field, field_validator

from models.registry import Registry

from tasks.core.stage_cache import StageContext, run_stage
from tasks.core.records import CODE_PROBLEMS
from tasks.core.tables import write_records
from tasks.core.store import ArtifactRef


class CodeDataConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    source: str = Field(default="tiny_code", description="a registered code-problem source (CODE_SOURCES)")
    seed: int = 0
    n_train: int = Field(default=400, ge=1, description="tiny_code: problems to train on")
    n_test: int = Field(default=150, ge=1, description="tiny_code: held-out problems")
    max_constant: int = Field(default=9, ge=2, description="tiny_code: constants in descriptions run 2..this; "
                              "9 allows ~725 distinct problems, 19 ~3200")

    @field_validator("source")
    @classmethod
    def _known(cls, name: str) -> str:
        CODE_SOURCES.lookup(name)  # names the known sources when it is not one
        return name


@dataclass(frozen=True)
class CodeSource:
    """A source of code problems: its (train, test) rows for a config, and the files it reads (their content is
    part of the stage's cache key)."""

    splits: Callable[["CodeDataConfig"], tuple[list[dict], list[dict]]]
    files: Callable[[], dict[str, str]] = field(default=lambda: {})


CODE_SOURCES = Registry("code problem source")


def _tiny_code(cfg: CodeDataConfig) -> tuple[list[dict], list[dict]]:
    from tasks.data.tiny_code import generate_tiny_code

    return generate_tiny_code(cfg.seed, cfg.n_train, cfg.n_test, cfg.max_constant)


CODE_SOURCES["tiny_code"] = CodeSource(_tiny_code)


@task(name="make_code_problems", retries=1, cache_policy=NONE)
def make_code_problems(cfg: CodeDataConfig, ctx: StageContext) -> ArtifactRef:
    """train.parquet / test.parquet; test problems never share a prompt with train ones."""
    source = CODE_SOURCES.lookup(cfg.source)

    def compute(out: Path) -> dict:
        train, test = source.splits(cfg)
        overlap = {r["prompt"] for r in train} & {r["prompt"] for r in test}
        if overlap:
            raise ValueError(f"{len(overlap)} test prompts also occur in train")
        return {"train_rows": write_records(out / "train.parquet", train, CODE_PROBLEMS),
                "test_rows": write_records(out / "test.parquet", test, CODE_PROBLEMS)}

    return run_stage(ctx, "make_code_problems", cfg, {}, compute, reads=source.files() or None)
