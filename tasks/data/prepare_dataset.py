"""The stage that imports a user's dataset (tasks/data/hf_source.py) into the store as train / test problem tables,
with its source, the content hash of every file it read and its row counts in the manifest (issue 13)."""
from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

from prefect import task
from prefect.cache_policies import NONE

from tasks.core.stage_cache import StageContext, run_stage
from tasks.core.store import ArtifactRef
from tasks.core.tables import write_records
from tasks.data.answer_formats import ANSWER_FORMATS, BadRow
from tasks.data.hf_source import DatasetConfig, normalised, read_file, to_problem
from tasks.data.prompting import add_shots


def read_split(files: list[str], split: str, cfg: DatasetConfig, skipped: Counter) -> list[dict]:
    """Every file's rows as problems, in file order. A bad row raises BadRow, or is counted in `skipped` (by
    field and reason) when `on_bad_row: skip`; a file that cannot be read always raises."""
    problems, number = [], 0  # number: the row across all files of the split (row ids stay unique)
    for path in files:
        for index, raw in enumerate(read_file(path, cfg)):
            number += 1
            try:
                problems.append(to_problem(raw, number - 1, split, path, cfg))
            except BadRow as bad:
                if cfg.on_bad_row == "error":
                    raise BadRow(path, index, bad.field, bad.why) from None
                skipped[f"{split}: {bad.field}: {bad.why.split(' (')[0]}"] += 1
    return problems


def _check_ids(rows: list[dict], split: str) -> None:
    counts = Counter(r["id"] for r in rows)
    duplicate = next((i for i, n in counts.items() if n > 1), None)
    if duplicate is not None:
        raise BadRow(split, None, "id", f"id {duplicate!r} occurs {counts[duplicate]} times (columns.id must be "
                     "unique)")


@task(name="load_dataset", retries=1, cache_policy=NONE, task_run_name="load_dataset[{cfg.name}]")
def load_dataset(cfg: DatasetConfig, ctx: StageContext) -> ArtifactRef:
    """train.parquet / test.parquet of problems (id, question, answer, prompt, completion, and the reference
    fields of the answer format: `final`, or `test` and `entry_point`)."""

    schema = ANSWER_FORMATS.lookup(cfg.answer_format).schema  # math or code problems

    def compute(out: Path) -> dict:
        skipped: Counter = Counter()
        train_all = read_split(cfg.train, "train", cfg, skipped)
        train, test, overlap = _split(train_all, cfg, skipped)
        if cfg.prompt.shots:
            try:
                add_shots(train, [train, test], cfg.prompt)  # from the train problems the limit keeps
            except ValueError as exc:
                raise BadRow(f"dataset {cfg.name!r}", None, "prompt.shots", str(exc)) from None
        for rows, split in ((train, "train"), (test, "test")):
            _check_ids(rows, split)
            if not rows and getattr(cfg, split):  # an evaluation set has no train files: an empty train table
                raise BadRow(f"dataset {cfg.name!r}", None, None, f"the {split} split has no usable rows")
        return {"source": {"format": cfg.format, "train": cfg.train, "test": cfg.test},
                "train_rows": write_records(out / "train.parquet", train, schema),
                "test_rows": write_records(out / "test.parquet", test, schema),
                "skipped_rows": sum(skipped.values()), "skipped": dict(skipped),
                "train_dropped_overlap": overlap, "example_prompt": (test or train)[0]["prompt"] if test or train
                else None}

    # file contents join the key; a hub dataset is keyed by its id, config and pinned revision (in cfg)
    reads = {f"{split}{i}": (path, cfg.storage_options) for split in ("train", "test")
             for i, path in enumerate(getattr(cfg, split))} if cfg.format != "hub" else None
    return run_stage(ctx, "load_dataset", cfg, {}, compute, reads=reads)


def _split(train: list[dict], cfg: DatasetConfig, skipped: Counter) -> tuple[list[dict], list[dict], int]:
    """(train, test, train rows dropped because their question is also a test question)."""
    if cfg.test:
        test = read_split(cfg.test, "test", cfg, skipped)
    else:  # only a train split given: a seeded hold-out
        order = list(range(len(train)))
        random.Random(cfg.seed).shuffle(order)
        held = set(order[: max(1, round(len(train) * cfg.test_fraction))])
        test = [p for i, p in enumerate(train) if i in held]
        train = [p for i, p in enumerate(train) if i not in held]
    # the same problem on both sides would score memorisation as skill: such train rows are dropped, and counted
    seen = {normalised(p["question"]) for p in test}
    kept = [p for p in train if normalised(p["question"]) not in seen]
    return kept[: cfg.limit_train], test[: cfg.limit_test], len(train) - len(kept)
