"""Stages that make the starting artifacts: the tiny-arith problem set and the tokenizer built from it."""
from __future__ import annotations

import json
from pathlib import Path

from prefect import task
from prefect.cache_policies import NONE
from pydantic import BaseModel, ConfigDict, Field

from tasks.data.tiny_arith import TinyArithSpec, generate_problems, to_completion, to_prompt
from tasks.core.stage_cache import StageContext, run_stage
from tasks.core.store import ArtifactRef
from tasks.core.records import MATH_PROBLEMS
from tasks.core.tables import read_rows, write_records


class TinyArithConfig(BaseModel):
    """The embedded default task (MathGLM-style synthetic word problems written like GSM8K)."""

    model_config = ConfigDict(extra="forbid")
    seed: int = 0
    n_train: int = Field(default=1000, ge=1)
    n_test: int = Field(default=1000, ge=1)
    min_steps: int = Field(default=2, ge=1)
    max_steps: int = Field(default=5, ge=1)
    max_operand: int = Field(default=12, ge=2)
    max_value: int = Field(default=99, ge=10)
    distractor_prob: float = Field(default=0.5, ge=0, le=1)
    shuffle_order_prob: float = Field(default=0.5, ge=0, le=1)


class TokenizerConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: str = Field(default="digit_wordlevel", description="word-level vocabulary, one token per digit")


@task(name="make_tiny_arith", retries=1, cache_policy=NONE)
def make_tiny_arith(cfg: TinyArithConfig, ctx: StageContext) -> ArtifactRef:
    """train.parquet / test.parquet with id, question, answer, final, n_steps, prompt, completion."""

    def compute(out: Path) -> dict:
        spec = TinyArithSpec(**cfg.model_dump())
        train, test = generate_problems(spec)
        overlap = {r["question"] for r in train} & {r["question"] for r in test}
        if overlap:  # the held-out split must be held out
            raise ValueError(f"{len(overlap)} test questions also occur in train, e.g. {sorted(overlap)[0]!r}")
        for rows in (train, test):
            for row in rows:
                row["prompt"], row["completion"] = to_prompt(row["question"]), to_completion(row["answer"])
        return {"train_rows": write_records(out / "train.parquet", train, MATH_PROBLEMS),
                "test_rows": write_records(out / "test.parquet", test, MATH_PROBLEMS)}

    return run_stage(ctx, "make_tiny_arith", cfg, {}, compute)


@task(name="build_tokenizer", retries=1, cache_policy=NONE)
def build_tokenizer(problems: ArtifactRef, cfg: TokenizerConfig, ctx: StageContext) -> ArtifactRef:
    """A tokenizer learned from the train texts and the test *questions* (vocabulary only, never test answers)."""

    def compute(out: Path) -> dict:
        from models.tokenizer import build_digit_tokenizer

        store = ctx.open_store()
        train, test = read_rows(store, problems, "train"), read_rows(store, problems, "test")
        tokenizer = build_digit_tokenizer([r["prompt"] + r["completion"] for r in train] + [r["prompt"] for r in test])
        tokenizer.save_pretrained(out)
        (out / "winnow_tokenizer.json").write_text(json.dumps(cfg.model_dump()))
        return {"vocab_size": len(tokenizer)}

    return run_stage(ctx, "build_tokenizer", cfg, {"problems": problems}, compute)
