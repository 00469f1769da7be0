"""Selection: rejection criteria, registered by name and applied in order to each prompt's labelled samples.

Labels carry the core label columns (tasks/core/records.py) plus whatever fields their labeller declared, so a
criterion names the label fields it reads (`needs`): labels without them (e.g. unit-test labels and
`distinct_calc_path`) fail with the criterion and the field named, not a KeyError (issue 12, item 3).
"""
from __future__ import annotations

import statistics
from collections import defaultdict
from pathlib import Path
from typing import Callable, Iterable, TypeVar

from prefect import task
from prefect.cache_policies import NONE
from pydantic import BaseModel, ConfigDict, Field, field_validator

from models.registry import Registry
from tasks.core.records import SELECTIONS, prompt_columns
from tasks.core.stage_cache import StageContext, run_stage
from tasks.core.store import ArtifactRef
from tasks.core.tables import read_rows, write_records
from tasks.labelling.answers import equation_holds

Criterion = Callable[[list[dict]], list[dict]]
C = TypeVar("C", bound=Criterion)
CRITERIA = Registry("criterion")
CRITERION_NEEDS: dict[str, tuple[str, ...]] = {}  # criterion -> label fields beyond the core ones it reads
# label fields a selected row keeps when its labels have them (SELECTIONS declares their types)
CARRIED_FIELDS = ("calc_path",)


def register_criterion(name: str, needs: Iterable[str] = ()) -> Callable[[C], C]:
    """Register a criterion with the labeller fields it reads (`needs`), checked before it runs."""
    def wrap(fn: C) -> C:
        CRITERIA[name] = fn
        CRITERION_NEEDS[name] = tuple(needs)
        return fn
    return wrap


def check_criteria_fields(criteria: list[str], fields: Iterable[str], labels: str = "the labels") -> None:
    """Fail, naming the criterion and the field, when `labels` lack a field a criterion reads. `fields`: the
    labels' columns, or `LabelConfig.output_schema().names` to check a config before anything runs."""
    have = set(fields)
    for name in criteria:
        missing = [f for f in CRITERION_NEEDS.get(name, ()) if f not in have]
        if missing:
            raise ValueError(f"select.criteria: {name!r} needs the label field {missing[0]!r}, which {labels} "
                             f"do not have (their labeller does not write it: drop {name!r} or label with one "
                             f"that does); fields there: {sorted(have)}")


def _needed(sample: dict, field: str, criterion: str):
    """`sample[field]` for a criterion that cannot judge without it (a failure label, or a row of a labeller
    that writes no such field, has None)."""
    value = sample.get(field)
    if value is None:
        raise ValueError(f"select.criteria: {criterion!r} needs the label field {field!r}, which sample "
                         f"{sample.get('sample_index')} of prompt {sample.get('prompt_id')!r} "
                         f"(model {sample.get('model_id')!r}) does not have")
    return value


@register_criterion("correct")
def keep_correct(samples: list[dict]) -> list[dict]:
    """Rejection sampling: keep samples whose reward says they reached the right answer."""
    return [s for s in samples if s["correct"]]


@register_criterion("valid_calculations", needs=["calc_path"])
def keep_valid_calculations(samples: list[dict]) -> list[dict]:
    """Drop samples with a wrong `<<a*b=c>>` annotation: a right answer reached through wrong arithmetic is a
    bad path to train on (the calculator makes every annotation right; without it a model slips)."""
    return [s for s in samples
            if all(equation_holds(eq) for eq in _needed(s, "calc_path", "valid_calculations"))]


@register_criterion("grounded_calculations", needs=["grounded"])
def keep_grounded_calculations(samples: list[dict]) -> list[dict]:
    """Drop samples whose equations use a number the question never gave (labelled `grounded` False): with
    small answers, wrong paths often land on the right answer, and path de-duplication would keep exactly those."""
    return [s for s in samples if s.get("grounded") is not False]


@register_criterion("distinct_calc_path", needs=["calc_path"])
def drop_duplicate_calc_paths(samples: list[dict]) -> list[dict]:
    """Keep the first sample of each distinct calculation path (list of `<<...>>` equations), as RFT does.

    Yuan et al. 2023 found that the number of *distinct* reasoning paths, not raw samples, drives the gain.
    A path equal to the problem's written solution (`reference_calc_path`, when labelled) is already in the
    SFT data, so it is dropped too: the selected set holds only new paths.
    """
    seen: set[tuple[str, ...]] = {tuple(s["reference_calc_path"]) for s in samples
                                  if s.get("reference_calc_path") is not None}
    kept = []
    for sample in samples:
        path = tuple(_needed(sample, "calc_path", "distinct_calc_path"))
        if path not in seen:
            seen.add(path)
            kept.append(sample)
    return kept


class SelectConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    criteria: list[str] = Field(default_factory=lambda: ["correct", "valid_calculations", "grounded_calculations",
                                                         "distinct_calc_path"],
                                description="applied in order to each prompt's samples")

    @field_validator("criteria")
    @classmethod
    def _known(cls, names: list[str]) -> list[str]:
        return registered_criteria(names)


def registered_criteria(names: list[str]) -> list[str]:
    """`names`, or a config error naming the unknown ones and the registered ones."""
    unknown = [n for n in names if n not in CRITERIA]
    if unknown:
        raise ValueError(f"unknown criteria {unknown}; known: {sorted(CRITERIA)}")
    return names


def select_per_prompt(rows: list[dict], criteria: list[str], labels: str = "the labels") -> dict[str, list[dict]]:
    """Group rows by prompt (in sample order) and apply the criteria to each group, after checking the rows have
    the fields the criteria read."""
    if rows:
        check_criteria_fields(criteria, {field for row in rows for field in row}, labels)
    groups: dict[str, list[dict]] = defaultdict(list)
    for row in sorted(rows, key=lambda r: (r["prompt_id"], r.get("model_id", ""), r["sample_index"])):
        groups[row["prompt_id"]].append(row)
    selected = {}
    for prompt_id, group in groups.items():
        for name in criteria:
            group = CRITERIA[name](group)
        selected[prompt_id] = group
    return selected


def carried_fields(rows: list[dict]) -> list[str]:
    """The CARRIED_FIELDS these labels have: only those are copied (unit-test labels have no calc_path)."""
    present = {field for row in rows for field in row}
    return [f for f in CARRIED_FIELDS if f in present]


def selected_rows(selected: dict[str, list[dict]], prompts: dict[str, dict], carried: list[str]) -> list[dict]:
    """selected.parquet's rows: the core selection columns (the prompt as its problem shows it), then the carried
    label fields."""
    return [{"prompt_id": pid, **prompts[pid], "completion": s["text"], "model_id": s["model_id"],
             "sample_index": s["sample_index"]} | {f: s.get(f) for f in carried}
            for pid, kept in selected.items() for s in kept]


@task(name="select_samples", retries=1, cache_policy=NONE)
def select_samples(
    labels: list[ArtifactRef], problems: ArtifactRef, cfg: SelectConfig, ctx: StageContext
) -> ArtifactRef:
    """selected.parquet: (prompt, completion) rows ready for SFT, pooled over every labels artifact given.

    Pooling samples from several rounds or models before de-duplication is RFT-U (Yuan et al. 2023).
    """

    def compute(out: Path) -> dict:
        store = ctx.open_store()
        rows = [row for ref in labels for row in read_rows(store, ref, "labels")]
        prompts = {r["id"]: prompt_columns(r) for r in read_rows(store, problems, "train")}
        names = "labels " + ", ".join(ref.short for ref in labels)
        selected = select_per_prompt(rows, cfg.criteria, names)
        out_rows = selected_rows(selected, prompts, carried_fields(rows))
        write_records(out / "selected.parquet", out_rows, SELECTIONS)
        per_problem = [len(kept) for kept in selected.values()]
        return {
            "samples": len(rows),
            "selected": len(out_rows),
            "acceptance_rate": len(out_rows) / len(rows) if rows else 0.0,
            "correct_rate": sum(r["correct"] for r in rows) / len(rows) if rows else 0.0,
            "problems": len(per_problem),
            "problems_with_selection": sum(n > 0 for n in per_problem),
            "distinct_paths_mean": statistics.fmean(per_problem) if per_problem else 0.0,
            "distinct_paths_hist": {str(k): per_problem.count(k) for k in sorted(set(per_problem))},
        }

    inputs = {f"labels{i}": ref for i, ref in enumerate(labels)} | {"problems": problems}
    return run_stage(ctx, "select_samples", cfg, inputs, compute)
