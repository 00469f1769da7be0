"""Math-Shepherd's automatic process labels (Wang et al. 2024): cut each sampled solution into steps; from each
step's prefix a policy completes N solutions; the step is good (hard label) when any completion reaches the
right answer, and its soft label is the share that does. No human marks a step.

Three stages, so the costly middle one is the ordinary generation stage (resumable per shard, engines pooled):
`step_prompts` (solutions → their steps, and one prompt per step prefix), then `sample_completions` +
`label_rewards` over those prompts, then `process_labels` (completions' verdicts → each step's labels, split
by problem into `steps_train` / `steps_test`). The last step's label is the solution's own verdict: the
solution is that step's only completion."""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import pyarrow as pa
from prefect import task
from prefect.cache_policies import NONE
from pydantic import BaseModel, ConfigDict, Field

from tasks.core.records import Column, RecordSchema, STRINGS
from tasks.core.stage_cache import StageContext, run_stage
from tasks.core.store import ArtifactRef
from tasks.core.tables import read_rows, write_records, write_rows
from tasks.labelling.steps import StepSplitConfig, split_steps
from tasks.selection.preferences import heldout

STEPS = RecordSchema("process labels", (
    Column("prompt_id", pa.string()), Column("sample_index", pa.int64()), Column("prompt", pa.string()),
    Column("steps", STRINGS),  # exact slices of the completion: "".join(steps) is the text the policy wrote
    Column("hard", pa.list_(pa.float64())),  # per step: 1.0 when any completion from its prefix was correct
    Column("soft", pa.list_(pa.float64())),  # per step: the share of completions that were correct
    Column("correct", pa.bool_()),  # the whole solution's verdict
))


class ProcessLabelConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    split: str = Field(default="train", description="the problems table the solutions answered")
    steps: StepSplitConfig = StepSplitConfig()
    solutions_per_problem: int = Field(default=4, ge=1, description="distinct sampled solutions labelled per "
                                       "problem (the first ones by sample index)")
    test_fraction: float = Field(default=0.1, ge=0, lt=1, description="share of problems whose solutions go to "
                                 "steps_test (held out from PRM training), by a hash of the problem id")


def pick_solutions(labels: list[dict], per_problem: int) -> list[dict]:
    """The first `per_problem` distinct texts of each problem, by sample index."""
    picked: dict[str, list[dict]] = defaultdict(list)
    for row in sorted(labels, key=lambda r: (r["prompt_id"], r["sample_index"])):
        texts = {r["text"] for r in picked[row["prompt_id"]]}
        if isinstance(row.get("text"), str) and row["text"].strip() and row["text"] not in texts \
                and len(picked[row["prompt_id"]]) < per_problem:
            picked[row["prompt_id"]].append(row)
    return [row for rows in picked.values() for row in rows]


def step_prompt_rows(solutions: list[dict], problems: dict[str, dict], cfg: ProcessLabelConfig
                     ) -> tuple[list[dict], list[dict]]:
    """(solution rows with their steps, one problem row per step prefix but the last). A prefix continues the
    policy's own text, so only plain-text prompts qualify: a chat-templated prompt would put it in the user turn."""
    kept, prompts = [], []
    for row in solutions:
        problem = problems.get(row["prompt_id"])
        if problem is None:
            raise ValueError(f"labels row {row['prompt_id']!r}/{row['sample_index']}: not among the "
                             f"{cfg.split!r} problems")
        if problem.get("chat_template"):
            raise ValueError(f"problem {problem['id']!r}: process labels continue the policy's text after the "
                             "prompt, which needs chat_template off for this dataset (prompt.chat_template: false)")
        steps = split_steps(row["text"], cfg.steps)
        kept.append({"prompt_id": row["prompt_id"], "sample_index": int(row["sample_index"]),
                     "prompt": problem["prompt"], "steps": steps, "correct": bool(row["correct"])})
        for k in range(1, len(steps)):
            prompts.append(problem | {"id": step_id(row["prompt_id"], row["sample_index"], k),
                                      "prompt": problem["prompt"] + "".join(steps[:k])})
    return kept, prompts


def step_id(prompt_id: str, sample_index: int, k: int) -> str:
    """The id of the prompt made of a solution's first k steps (its step k-1 is labelled by its completions)."""
    return f"{prompt_id}#{sample_index}#{k}"


@task(name="step_prompts", retries=1, cache_policy=NONE, task_run_name="step_prompts[{name}]")
def step_prompts(name: str, labels: ArtifactRef, problems: ArtifactRef, cfg: ProcessLabelConfig,
                 ctx: StageContext) -> ArtifactRef:
    """`solutions.parquet` (each picked solution and its steps) and `<split>.parquet`, a problems table with one
    row per step prefix (the problem's fields, the prompt extended by the prefix), for the generation stage."""

    def compute(out: Path) -> dict:
        store = ctx.open_store()
        by_id = {row["id"]: row for row in read_rows(store, problems, cfg.split)}
        solutions, prompts = step_prompt_rows(pick_solutions(read_rows(store, labels, "labels"),
                                                             cfg.solutions_per_problem), by_id, cfg)
        if not prompts:
            raise ValueError(f"labels {labels.short}: no solution has two steps or more to label "
                             f"(steps.mode={cfg.steps.mode!r}); nothing for Math-Shepherd to complete")
        write_rows(out / "solutions.parquet", solutions)
        write_rows(out / f"{cfg.split}.parquet", prompts)
        return {"solutions": len(solutions), "step_prompts": len(prompts),
                "steps": sum(len(s["steps"]) for s in solutions)}

    return run_stage(ctx, "step_prompts", cfg, {"labels": labels, "problems": problems}, compute)


def step_labels(solutions: list[dict], rollout_labels: list[dict]) -> list[dict]:
    """Each solution with per-step hard and soft labels from the verdicts of its prefixes' completions; a step
    whose prefix got no completion (none generated) fails loudly rather than becoming a label."""
    verdicts: dict[str, list[bool]] = defaultdict(list)
    for row in rollout_labels:
        verdicts[row["prompt_id"]].append(bool(row["correct"]))
    rows = []
    for s in solutions:
        hard, soft = [], []
        for k in range(1, len(s["steps"])):
            got = verdicts.get(step_id(s["prompt_id"], s["sample_index"], k))
            if not got:
                raise ValueError(f"solution {s['prompt_id']}/{s['sample_index']} step {k - 1}: no completion "
                                 "was labelled for its prefix")
            hard.append(float(any(got)))
            soft.append(sum(got) / len(got))
        rows.append(s | {"hard": hard + [float(s["correct"])], "soft": soft + [float(s["correct"])]})
    return rows


@task(name="process_labels", retries=1, cache_policy=NONE, task_run_name="process_labels[{name}]")
def process_labels(name: str, prompts: ArtifactRef, rollout_labels: ArtifactRef, cfg: ProcessLabelConfig,
                   ctx: StageContext) -> ArtifactRef:
    """`steps_train.parquet` / `steps_test.parquet`: every solution, its steps and their Math-Shepherd labels."""

    def compute(out: Path) -> dict:
        store = ctx.open_store()
        rows = step_labels(read_rows(store, prompts, "solutions"), read_rows(store, rollout_labels, "labels"))
        # by problem (a pure function of its id: reruns split alike), so no problem is on both sides
        test = [r for r in rows if heldout(r["prompt_id"], cfg.test_fraction, seed=0)]
        train = [r for r in rows if not heldout(r["prompt_id"], cfg.test_fraction, seed=0)]
        for table, part in (("steps_train", train), ("steps_test", test)):
            write_records(out / f"{table}.parquet", part, STEPS)
        hard = [v for r in rows for v in r["hard"]]
        return {"solutions": len(rows), "train": len(train), "test": len(test), "steps": len(hard),
                "hard_positive": sum(hard) / len(hard) if hard else 0.0,
                "soft_mean": sum(v for r in rows for v in r["soft"]) / len(hard) if hard else 0.0}

    return run_stage(ctx, "process_labels", cfg, {"prompts": prompts, "rollout_labels": rollout_labels}, compute)
