"""Evol-Instruct's stages (WizardLM / WizardMath). One round:

    evolution_prompts ─► sample_completions[evolveR] ─► screen_evolved ─► sample_completions[answerR] ─► eliminate_evolved
    (parent × operation)   (the teacher rewrites)        (parse; question     (the teacher answers          (the answer filter; kept
                                                          filters)            the survivors)                 rows + the next pool)

`seed_pool` makes round 0 from any problem set; `evolved_dataset` gathers every round's kept and eliminated rows.
The teacher runs in the existing `sample_completions` stage over the tables these stages commit, so generation is
resumable per shard and pooled like any other sampling."""
from __future__ import annotations

from collections import Counter
from pathlib import Path

from prefect import task
from prefect.cache_policies import NONE
from pydantic import BaseModel, ConfigDict, Field, field_validator

from tasks.core.records import prompt_columns
from tasks.core.stage_cache import StageContext, run_stage
from tasks.core.store import ArtifactRef
from tasks.core.tables import read_rows, write_records
from tasks.generation.generate import first_texts
from tasks.instructions.elimination import Candidate, EliminationConfig, first_failure
from tasks.instructions.evolve import OPERATIONS, candidate_id, choose_operations, evolution_prompt, parse_evolved
from tasks.instructions.records import ELIMINATED, EVOLUTION_PROMPTS, EVOLVED, TO_ANSWER

LINEAGE_FIELDS = ("source_id", "parent_id", "operation", "round")


class SeedConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    split: str = Field(default="train", description="which table of the problems artifact holds the seeds")
    limit: int | None = Field(default=8, ge=1, description="the first N questions of that table")


class EvolveConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    operations: list[str] = Field(default_factory=lambda: list(OPERATIONS), description="which operations "
                                  "(tasks/instructions/evolve.py OPERATIONS) a round may apply")
    per_question: int | None = Field(default=1, ge=1, description="operations per question per round, a seeded "
                                     "draw (WizardLM: one at random); None: every operation")
    seed: int = 0
    chat_template: bool = True
    system: str | None = None

    @field_validator("operations")
    @classmethod
    def _known(cls, names: list[str]) -> list[str]:
        for name in names:
            OPERATIONS.lookup(name)
        return names


class AnswerPromptConfig(BaseModel):
    """How an evolved question is put to the teacher for its answer (and to a student trained on the data)."""

    model_config = ConfigDict(extra="forbid")
    instruction: str = "Solve the problem step by step. End with 'The answer is <number>.'"
    chat_template: bool = True
    system: str | None = None


@task(name="seed_pool", retries=1, cache_policy=NONE)
def seed_pool(problems: ArtifactRef, cfg: SeedConfig, ctx: StageContext) -> ArtifactRef:
    """pool.parquet: round 0, the seed questions with their written answers (operation "seed", no parent)."""

    def compute(out: Path) -> dict:
        rows = read_rows(ctx.open_store(), problems, cfg.split)[: cfg.limit]
        seeds = [{"id": r["id"], "question": r["question"], "answer": r.get("answer") or r.get("completion") or "",
                  "completion": r.get("completion") or r.get("answer") or "", "source_id": r["id"],
                  "parent_id": None, "operation": "seed", "round": 0} | prompt_columns(r) for r in rows]
        if not seeds:
            raise ValueError(f"{problems.short}/{cfg.split}.parquet has no questions to evolve")
        return {"seeds": write_records(out / "pool.parquet", seeds, EVOLVED)}

    return run_stage(ctx, "seed_pool", cfg, {"problems": problems}, compute)


@task(name="evolution_prompts", retries=1, cache_policy=NONE, task_run_name="evolution_prompts[{name}]")
def evolution_prompts(name: str, pool: ArtifactRef, round_: int, cfg: EvolveConfig, ctx: StageContext
                      ) -> ArtifactRef:
    """train.parquet: one prompt per (pool question, operation drawn for it this round)."""

    def compute(out: Path) -> dict:
        rows = []
        for parent in read_rows(ctx.open_store(), pool, "pool"):
            for op in choose_operations(parent["id"], round_, cfg.operations, cfg.per_question, cfg.seed):
                rows.append({"id": candidate_id(parent["id"], round_, op),
                             "prompt": evolution_prompt(parent["question"], op), "parent_question": parent["question"],
                             "source_id": parent["source_id"], "parent_id": parent["id"], "operation": op,
                             "round": round_, "chat_template": cfg.chat_template, "system": cfg.system})
        return {"prompts": write_records(out / "train.parquet", rows, EVOLUTION_PROMPTS),
                "by_operation": dict(Counter(r["operation"] for r in rows))}

    return run_stage(ctx, "evolution_prompts", {"round": round_, "evolve": cfg.model_dump(mode="json")},
                     {"pool": pool}, compute)


@task(name="screen_evolved", retries=1, cache_policy=NONE, task_run_name="screen_evolved[{name}]")
def screen_evolved(name: str, prompts: ArtifactRef, evolved: ArtifactRef, cfg: EliminationConfig,
                   answer: AnswerPromptConfig, ctx: StageContext) -> ArtifactRef:
    """train.parquet: the evolved questions that pass the question filters, as prompts for the teacher's answer;
    eliminated.parquet: the rest, each with the filter that dropped it."""

    def compute(out: Path) -> dict:
        store = ctx.open_store()
        texts = first_texts(store, evolved)
        survivors, eliminated = [], []
        for p in read_rows(store, prompts, "train"):
            question = parse_evolved(texts.get(p["id"], ""))
            lineage = {k: p[k] for k in LINEAGE_FIELDS}
            reason = first_failure(Candidate(question, p["parent_question"], p["operation"]), cfg, answered=False)
            if reason is not None:
                eliminated.append({"id": p["id"], "question": question, "evolution": texts.get(p["id"], ""),
                                   "answer": None, "reason": reason} | lineage)
                continue
            survivors.append({"id": p["id"], "prompt": f"{question}\n{answer.instruction}".strip(),
                              "question": question, "parent_question": p["parent_question"],
                              "evolution": texts[p["id"]], "chat_template": answer.chat_template,
                              "system": answer.system} | lineage)
        if not survivors:  # sample_completions needs prompts: say why there are none, not that a table is empty
            raise ValueError(f"{name}: all {len(eliminated)} evolved questions were eliminated before answering "
                             f"({dict(Counter(e['reason'] for e in eliminated))}); give the teacher more "
                             "max_tokens, loosen elimination (min_words, filters) or use a stronger teacher")
        write_records(out / "eliminated.parquet", eliminated, ELIMINATED)
        return {"candidates": len(survivors) + len(eliminated),
                "survivors": write_records(out / "train.parquet", survivors, TO_ANSWER),
                "eliminated_by": dict(Counter(e["reason"] for e in eliminated))}

    return run_stage(ctx, "screen_evolved", {"eliminate": cfg.model_dump(mode="json"),
                                             "answer": answer.model_dump(mode="json")},
                     {"prompts": prompts, "evolved": evolved}, compute)


@task(name="eliminate_evolved", retries=1, cache_policy=NONE, task_run_name="eliminate_evolved[{name}]")
def eliminate_evolved(name: str, pool: ArtifactRef, screened: ArtifactRef, answers: ArtifactRef,
                      cfg: EliminationConfig, ctx: StageContext) -> ArtifactRef:
    """kept.parquet: the round's evolved questions with the teacher's answers; eliminated.parquet: every candidate
    of the round that a filter dropped; pool.parquet: the next round's pool — the kept questions, plus each parent
    none of whose evolutions survived (it is evolved again next round, so a round never empties the pool)."""

    def compute(out: Path) -> dict:
        store = ctx.open_store()
        replies = first_texts(store, answers)
        kept, eliminated = [], read_rows(store, screened, "eliminated")
        for q in read_rows(store, screened, "train"):
            reply = replies.get(q["id"], "")
            lineage = {k: q[k] for k in LINEAGE_FIELDS}
            candidate = Candidate(q["question"], q["parent_question"], q["operation"], reply)
            reason = first_failure(candidate, cfg, answered=True)
            if reason is not None:
                eliminated.append({"id": q["id"], "question": q["question"], "evolution": q["evolution"],
                                   "answer": reply, "reason": reason} | lineage)
            else:
                kept.append({"id": q["id"], "question": q["question"], "answer": reply, "completion": reply}
                            | prompt_columns(q) | lineage)
        evolved_from = {k["parent_id"] for k in kept}
        retried = [p for p in read_rows(store, pool, "pool") if p["id"] not in evolved_from]
        write_records(out / "kept.parquet", kept, EVOLVED)
        write_records(out / "eliminated.parquet", eliminated, ELIMINATED)
        write_records(out / "pool.parquet", kept + retried, EVOLVED)
        return {"candidates": len(kept) + len(eliminated), "kept": len(kept), "retried_parents": len(retried),
                "eliminated_by": dict(Counter(e["reason"] for e in eliminated))} | _by_operation(kept, eliminated)

    return run_stage(ctx, "eliminate_evolved", cfg, {"pool": pool, "screened": screened, "answers": answers},
                     compute)


@task(name="evolved_dataset", retries=1, cache_policy=NONE)
def evolved_dataset(rounds: list[ArtifactRef], ctx: StageContext) -> ArtifactRef:
    """train.parquet: every round's kept questions with their lineage and the teacher's answer (SFT-ready:
    `prompt`, `completion`); eliminated.parquet: every eliminated candidate with the filter that dropped it."""

    def compute(out: Path) -> dict:
        store = ctx.open_store()
        kept = [row for ref in rounds for row in read_rows(store, ref, "kept")]
        eliminated = [row for ref in rounds for row in read_rows(store, ref, "eliminated")]
        write_records(out / "train.parquet", kept, EVOLVED)
        write_records(out / "eliminated.parquet", eliminated, ELIMINATED)
        per_round = {str(r): {"kept": sum(k["round"] == r for k in kept),
                              "eliminated": sum(e["round"] == r for e in eliminated)}
                     for r in sorted({row["round"] for row in kept + eliminated})}
        example = max(kept, key=lambda k: k["round"], default=None)
        return {"kept": len(kept), "eliminated": len(eliminated), "per_round": per_round,
                "eliminated_by": dict(Counter(e["reason"] for e in eliminated)),
                "example": {k: example[k] for k in ("id", "question", "answer", "operation", "round")}
                if example else None} | _by_operation(kept, eliminated)

    return run_stage(ctx, "evolved_dataset", {}, {f"round{i}": ref for i, ref in enumerate(rounds, 1)}, compute)


def _by_operation(kept: list[dict], eliminated: list[dict]) -> dict:
    ops = sorted({r["operation"] for r in kept + eliminated})
    return {"by_operation": {op: {"kept": sum(k["operation"] == op for k in kept),
                                  "eliminated": sum(e["operation"] == op for e in eliminated)} for op in ops}}
