"""Self-Instruct's stages (Wang et al. 2023; Alpaca). One round:

    instruction_prompts ─► sample_completions[instructionsR] ─► keep_instructions
    (k pool tasks as         (the teacher writes new tasks)       (parse; filters incl. ROUGE-L novelty
     a few-shot prompt)                                            against the whole pool; the grown pool)

`seed_tasks` makes the pool from the shipped seed file (and optionally a dataset's questions); after the rounds the
teacher answers every kept instruction (`sample_completions[responses]`) and `instruction_dataset` writes the SFT
table the student is fine-tuned on by the existing `train_sft` stage."""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from prefect import task
from prefect.cache_policies import NONE
from pydantic import BaseModel, ConfigDict, Field

from tasks.core.stage_cache import StageContext, run_stage
from tasks.core.store import ArtifactRef
from tasks.core.tables import read_rows, write_records
from tasks.generation.generate import first_texts
from tasks.instructions.records import INSTRUCTION_PROMPTS, INSTRUCTION_SFT, INSTRUCTIONS, REJECTED, TO_RESPOND
from tasks.instructions.self_instruct import (InstructionFilterConfig, Pool, PromptingConfig, draw_examples,
                                              first_failure, instruction_prompt, parse_instructions)

PROJECT = Path(__file__).resolve().parents[2]


class SeedTasksConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    file: str | None = Field(default="configs/self_instruct/seed_tasks.jsonl", description="JSONL of "
                             "{instruction, output} seed tasks; a relative path is looked up from the project root")
    dataset_split: str = Field(default="train", description="with a dataset: which table's questions join the seeds")
    dataset_limit: int | None = Field(default=None, ge=1, description="with a dataset: its first N questions")

    def path(self) -> str | None:
        if self.file is None or "://" in self.file or Path(self.file).is_absolute():
            return self.file
        return str(PROJECT / self.file)


class RespondConfig(BaseModel):
    """How a kept instruction is put to the teacher (and to the student trained on its response)."""

    model_config = ConfigDict(extra="forbid")
    chat_template: bool = True
    system: str | None = None


class KeepConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    per_completion: int = Field(default=3, ge=1, description="new instructions read from one teacher text")
    drop_truncated: bool = Field(default=True, description="drop the last instruction of a text cut off by "
                                 "max_tokens (it may be unfinished; the paper drops it)")
    filters: InstructionFilterConfig = InstructionFilterConfig()
    respond: RespondConfig = RespondConfig()


@task(name="seed_tasks", retries=1, cache_policy=NONE)
def seed_tasks(cfg: SeedTasksConfig, problems: ArtifactRef | None, ctx: StageContext) -> ArtifactRef:
    """pool.parquet: the seed tasks (origin "seed"), then a dataset's questions with their written solutions
    (origin "dataset") when one is given."""

    def compute(out: Path) -> dict:
        import fsspec

        rows = []
        if cfg.file is not None:
            with fsspec.open(cfg.path(), "r") as fh:
                for n, line in enumerate(line for line in fh if line.strip()):
                    task_ = json.loads(line)
                    rows.append({"id": f"seed-{n:04d}", "instruction": task_["instruction"],
                                 "output": task_["output"], "origin": "seed", "round": 0})
        if problems is not None:
            rows += [{"id": p["id"], "instruction": p["question"], "output": p.get("completion") or p.get("answer"),
                      "origin": "dataset", "round": 0}
                     for p in read_rows(ctx.open_store(), problems, cfg.dataset_split)[: cfg.dataset_limit]]
        if not rows:
            raise ValueError("seed_tasks: no seeds (give seeds.file, a dataset, or both)")
        return {"seeds": write_records(out / "pool.parquet", rows, INSTRUCTIONS),
                "by_origin": dict(Counter(r["origin"] for r in rows))}

    reads = {"seeds": cfg.path()} if cfg.file is not None else None
    return run_stage(ctx, "seed_tasks", cfg, {"problems": problems} if problems else {}, compute, reads=reads)


@task(name="instruction_prompts", retries=1, cache_policy=NONE, task_run_name="instruction_prompts[{name}]")
def instruction_prompts(name: str, pool: ArtifactRef, round_: int, cfg: PromptingConfig, ctx: StageContext
                        ) -> ArtifactRef:
    """train.parquet: `prompts_per_round` few-shot prompts, each showing `shots` pool tasks."""

    def compute(out: Path) -> dict:
        tasks = read_rows(ctx.open_store(), pool, "pool")
        rows = []
        for i in range(cfg.prompts_per_round):
            examples = draw_examples(tasks, round_, i, cfg)
            rows.append({"id": f"r{round_}-p{i:04d}", "round": round_, "example_ids": [e["id"] for e in examples],
                         "prompt": instruction_prompt([e["instruction"] for e in examples], cfg.header),
                         "chat_template": cfg.chat_template, "system": cfg.system})
        return {"prompts": write_records(out / "train.parquet", rows, INSTRUCTION_PROMPTS), "pool": len(tasks)}

    return run_stage(ctx, "instruction_prompts", {"round": round_, "prompting": cfg.model_dump(mode="json")},
                     {"pool": pool}, compute)


@task(name="keep_instructions", retries=1, cache_policy=NONE, task_run_name="keep_instructions[{name}]")
def keep_instructions(name: str, pool: ArtifactRef, written: ArtifactRef, round_: int, cfg: KeepConfig,
                      ctx: StageContext) -> ArtifactRef:
    """pool.parquet: the pool grown by this round's kept instructions; rejected.parquet: this round's rejected ones
    with the filter that fired; train.parquet: every generated instruction in the pool, as prompts for responses."""

    def compute(out: Path) -> dict:
        store = ctx.open_store()
        tasks = read_rows(store, pool, "pool")
        members = Pool([t["instruction"] for t in tasks])
        kept, rejected, parsed = [], [], 0
        for s in sorted(read_rows(store, written, "samples"), key=lambda s: (s["prompt_id"], s["sample_index"])):
            for text in parse_instructions(s["text"], cfg.drop_truncated and s["finish_reason"] == "length",
                                           cfg.per_completion):
                parsed += 1
                reason = first_failure(text, members, cfg.filters)
                if reason is None:
                    members.add(text)  # later candidates of this round are compared with it too
                    kept.append({"id": f"gen-r{round_}-{len(kept):05d}", "instruction": text, "output": None,
                                 "origin": "generated", "round": round_, "prompt_id": s["prompt_id"]})
                    continue
                score, nearest = members.nearest(text) if reason == "too_similar" else (None, None)
                rejected.append({"instruction": text, "round": round_, "prompt_id": s["prompt_id"],
                                 "reason": reason, "rouge_l": score, "nearest": nearest})
        grown = tasks + kept
        respond = [{"id": t["id"], "prompt": t["instruction"], "instruction": t["instruction"], "origin": t["origin"],
                    "round": t["round"], "chat_template": cfg.respond.chat_template, "system": cfg.respond.system}
                   for t in grown if t["origin"] == "generated"]
        write_records(out / "pool.parquet", grown, INSTRUCTIONS)
        write_records(out / "rejected.parquet", rejected, REJECTED)
        write_records(out / "train.parquet", respond, TO_RESPOND)
        return {"parsed": parsed, "kept": len(kept), "pool": len(grown),
                "rejected_by": dict(Counter(r["reason"] for r in rejected))}

    return run_stage(ctx, "keep_instructions", {"round": round_, "keep": cfg.model_dump(mode="json")},
                     {"pool": pool, "written": written}, compute)


@task(name="instruction_dataset", retries=1, cache_policy=NONE)
def instruction_dataset(rounds: list[ArtifactRef], responses: ArtifactRef, include_seeds: bool,
                        respond: RespondConfig, ctx: StageContext) -> ArtifactRef:
    """train.parquet: (instruction, teacher's response) SFT rows — and the seeds' written pairs when
    `include_seeds`; an instruction the teacher gave no response is left out and counted (`empty_response`);
    rejected.parquet: every round's rejected instructions."""

    def compute(out: Path) -> dict:
        store = ctx.open_store()
        replies = first_texts(store, responses)
        shown = {"chat_template": respond.chat_template, "system": respond.system}
        rows, empty = [], 0
        for q in read_rows(store, rounds[-1], "train"):
            reply = replies.get(q["id"], "").strip()
            if not reply:
                empty += 1
                continue
            rows.append({k: q[k] for k in ("id", "prompt", "instruction", "origin", "round")} | shown
                        | {"completion": reply})
        seeds = [{"id": t["id"], "prompt": t["instruction"], "completion": t["output"], "instruction": t["instruction"],
                  "origin": t["origin"], "round": 0} | shown
                 for t in read_rows(store, rounds[-1], "pool") if t["origin"] != "generated" and t["output"]]
        seeds = seeds if include_seeds else []
        rejected = [r for ref in rounds for r in read_rows(store, ref, "rejected")]
        write_records(out / "rejected.parquet", rejected, REJECTED)
        return {"train_rows": write_records(out / "train.parquet", seeds + rows, INSTRUCTION_SFT),
                "generated": len(rows), "seeds": len(seeds), "empty_response": empty,
                "rejected_by": dict(Counter(r["reason"] for r in rejected)),
                "per_round": {str(i): {"kept": sum(r["round"] == i for r in rows),
                                       "rejected": sum(r["round"] == i for r in rejected)}
                              for i in range(1, len(rounds) + 1)},
                "example": {k: rows[0][k] for k in ("instruction", "completion")} if rows else None}

    return run_stage(ctx, "instruction_dataset", {"include_seeds": include_seeds,
                                                  "respond": respond.model_dump(mode="json")},
                     {f"round{i}": ref for i, ref in enumerate(rounds, 1)} | {"responses": responses}, compute)
