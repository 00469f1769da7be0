"""Ranked instructions for WizardMath's instruction reward model (IRM), which ranks instructions on definition,
precision and integrity. Where no teacher ranks them, the ranking can be constructed and checked on any math
question: the question as written (complete, well-posed) > the same question with a quantity it needs removed
(integrity: unanswerable) > the question with a statement contradicting it (precision: two answers).

Each variant is made from the first sentence stating a number, so the ranking holds for every question that has
one (tiny-arith's opening "Ann has 5 apples.", GSM8K's first given quantity)."""
from __future__ import annotations

import random
import re
from pathlib import Path

from prefect import task
from prefect.cache_policies import NONE
from pydantic import BaseModel, ConfigDict, Field

from tasks.core.stage_cache import StageContext, run_stage
from tasks.core.store import ArtifactRef
from tasks.core.tables import read_rows, write_rows

_SENTENCE = re.compile(r"[^.?!]*\d[^.?!]*[.?!]")  # the first sentence with a digit in it
_NUMBER = re.compile(r"\d+(?:\.\d+)?")


class InstructionRankingConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    seed: int = 0
    limit_train: int | None = Field(default=None, ge=1, description="questions of the train split used (all)")
    limit_test: int | None = Field(default=None, ge=1, description="questions of the test split used (all)")


def missing_quantity(question: str, rng: random.Random) -> str | None:
    """The question with the first stated number replaced by "some": it can no longer be answered."""
    match = _SENTENCE.search(question)
    if match is None:
        return None
    sentence = match.group(0)
    number = _NUMBER.search(sentence)
    vague = sentence[: number.start()] + "some" + sentence[number.end():]
    return question[: match.start()] + vague + question[match.end():]


def contradictory(question: str, rng: random.Random) -> str | None:
    """The question with its first numeric sentence stated again with another number right after it: two
    statements that cannot both hold."""
    match = _SENTENCE.search(question)
    if match is None:
        return None
    sentence = match.group(0)
    number = _NUMBER.search(sentence)
    value = float(number.group(0))
    other = value + rng.randint(1, 9)
    other_text = str(int(other)) if other == int(other) else str(other)
    restated = sentence[: number.start()] + other_text + sentence[number.end():]
    return question[: match.end()] + " " + restated.strip() + question[match.end():]


def ranked_variants(question: str, rng: random.Random) -> list[str] | None:
    """[well-posed, missing a quantity, contradictory], best first; None for a question with no number."""
    missing, contradicting = missing_quantity(question, rng), contradictory(question, rng)
    if missing is None or contradicting is None:
        return None
    return [question, missing, contradicting]


def ranking_tables(rows: list[dict], rng: random.Random) -> tuple[list[dict], list[dict]]:
    """(groups, pairs) in the reward-model method's tables (tasks/selection/preferences.py's shapes): the
    instruction is the text, the prompt empty (the IRM reads the question alone)."""
    groups, pairs = [], []
    for row in rows:
        texts = ranked_variants(row["question"], rng)
        if texts is None:
            continue
        groups.append({"prompt_id": row["id"], "prompt": "", "texts": texts, "scores": [2.0, 1.0, 0.0]})
        pairs += [{"prompt_id": row["id"], "prompt": "", "chosen": texts[i], "rejected": texts[j]}
                  for i, j in ((0, 1), (1, 2), (0, 2))]
    return groups, pairs


@task(name="instruction_rankings", retries=1, cache_policy=NONE, task_run_name="instruction_rankings[{name}]")
def instruction_rankings(name: str, problems: ArtifactRef, cfg: InstructionRankingConfig,
                         ctx: StageContext) -> ArtifactRef:
    """groups_{train,test} (3 ranked variants per question) and pairs_{train,test} (their 3 comparisons) from
    the problems' questions; test variants come from test questions only."""

    def compute(out: Path) -> dict:
        store = ctx.open_store()
        rng = random.Random(cfg.seed)
        metrics = {}
        for split, limit in (("train", cfg.limit_train), ("test", cfg.limit_test)):
            rows = read_rows(store, problems, split)[:limit]
            missing = [i for i, r in enumerate(rows) if not isinstance(r.get("question"), str)]
            if missing:
                raise ValueError(f"problems {problems.short} {split}.parquet row {missing[0]}: field 'question' "
                                 "is missing; the IRM ranks questions")
            groups, pairs = ranking_tables(rows, rng)
            write_rows(out / f"groups_{split}.parquet", groups)
            write_rows(out / f"pairs_{split}.parquet", pairs)
            metrics |= {f"groups_{split}": len(groups), f"pairs_{split}": len(pairs),
                        f"skipped_{split}": len(rows) - len(groups)}
        if not metrics["groups_train"]:
            raise ValueError(f"problems {problems.short}: no train question states a number to vary")
        return metrics

    return run_stage(ctx, "instruction_rankings", cfg, {"problems": problems}, compute)
