"""The labeller registry: every way of turning a sample into a reward, chosen by name in config.

Two kinds, one output shape (a dict with at least `reward`, `correct`, `status`, `error`):
- row labellers, `fn(completion, problem, options) -> dict`: pure per sample (answer checks, sandboxed programs
  and unit tests); the label stage fans them out over Ray in chunks;
- batch labellers, `fn(rows, problems, options) -> list[dict]`: hold a model (reward-model scoring on Ray
  actors) and see the whole stage's rows at once.

Modules that define labellers register them on import; tasks/labelling/label.py imports them all. A labeller
declares the fields it writes besides the core label columns when it registers (issue 12, item 3):

    @register_labeller("math_answer", fields={"calc_path": pa.list_(pa.string()), "grounded": pa.bool_()})

and the label stage writes labels.parquet through `labels_schema`, so an undeclared or mistyped field fails the
stage naming the row and the field, and generic stages (selection) can tell which fields labels have.
"""
from __future__ import annotations

from typing import Callable, Mapping, Protocol, TypeVar

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field, field_validator

from models.process_reward import STEP_AGGREGATES
from models.registry import Registry
from tasks.core.records import LABELS, Column, RecordSchema
from tasks.labelling.sandbox import SandboxLimits
from tasks.labelling.steps import StepSplitConfig

F = TypeVar("F", bound=Callable)


class RewardModelOptions(BaseModel):
    """Where the reward model is and how to run it (InstructGPT-style scorer: reward read at the EOS token)."""

    model_config = ConfigDict(extra="forbid")
    model: str = Field(description="an HF folder with a sequence-classification (value) head, local or in the store")
    batch_size: int = Field(default=16, ge=1)
    max_len: int = Field(default=1024, ge=8)
    num_scorers: int = Field(default=1, ge=1)
    cpus_per_scorer: float = Field(default=1.0, gt=0)
    use_gpu: bool = False


class ProcessRewardOptions(RewardModelOptions):
    """A process reward model (models/process_reward.py): every step of a completion scored, then aggregated."""

    steps: StepSplitConfig = StepSplitConfig()
    aggregate: str = Field(default="min", description=f"how step scores become the reward: {sorted(STEP_AGGREGATES)}")

    @field_validator("aggregate")
    @classmethod
    def _known_aggregate(cls, name: str) -> str:
        if name not in STEP_AGGREGATES:
            raise ValueError(f"unknown aggregate {name!r}; known: {sorted(STEP_AGGREGATES)}")
        return name


class LabelOptions(BaseModel):
    """What labellers may need besides the sample and its problem."""

    model_config = ConfigDict(extra="forbid")
    sandbox: SandboxLimits = SandboxLimits()
    reward_model: RewardModelOptions | None = None
    process_reward: ProcessRewardOptions | None = None
    instruction_reward: RewardModelOptions | None = None


class RowLabeller(Protocol):
    def __call__(self, completion: str, problem: dict, options: LabelOptions) -> dict: ...


class BatchLabeller(Protocol):
    def __call__(self, rows: list[dict], problems: dict[str, dict], options: LabelOptions) -> list[dict]: ...


ROW_LABELLERS = Registry("row labeller")
BATCH_LABELLERS = Registry("batch labeller")
# name -> the labeller's own fields (its typed extension of LABELS), declared where it registers
LABELLER_FIELDS: dict[str, tuple[Column, ...]] = {}
# labellers that run model-written code: the label stage checks the sandbox's confinement before any of them runs
SANDBOXED: set[str] = set()
# labellers whose labels carry no answer (`pred`) to vote on: unit tests pass or fail, a reward model scores;
# maj@K means nothing for them (issue 15: RRTF's report showed maj@8 = 0% for code)
NO_ANSWER: set[str] = set()
# batch labeller → the LabelOptions field (its model) it needs: a config naming the labeller without it fails
# at load time
NEEDS_OPTION: dict[str, str] = {}


def register_labeller(name: str, fields: Mapping[str, pa.DataType] | None = None,
                      sandboxed: bool = False, answers: bool = True) -> Callable[[F], F]:
    """Register a row labeller with the Arrow types of the fields it adds to the core label columns; `sandboxed`
    when it runs model-written code (tasks/labelling/sandbox.py); `answers` when its labels carry the answer
    they judged (`pred`), so samples can vote."""
    if sandboxed:
        SANDBOXED.add(name)
    if not answers:
        NO_ANSWER.add(name)
    return _register(ROW_LABELLERS, name, fields)


def register_batch_labeller(name: str, fields: Mapping[str, pa.DataType] | None = None,
                            answers: bool = True, needs: str | None = None) -> Callable[[F], F]:
    """Register a batch labeller with the Arrow types of the fields it adds to the core label columns, and the
    `LabelOptions` field it reads its model from (`needs`)."""
    if needs is not None:
        NEEDS_OPTION[name] = needs
    if not answers:
        NO_ANSWER.add(name)
    return _register(BATCH_LABELLERS, name, fields)


def answers_vote(names: list[str]) -> bool:
    """Whether labels by these labellers (the first one's `pred` is kept) carry answers that can vote."""
    return bool(names) and names[0] not in NO_ANSWER


def _register(registry: Registry, name: str, fields: Mapping[str, pa.DataType] | None) -> Callable[[F], F]:
    # optional: a failure label (a row that could not be judged) has only the core fields
    columns = tuple(Column(field, kind, required=False) for field, kind in (fields or {}).items())
    LABELS.extend(columns, kind=f"labels of {name}")  # a clash with a core column fails here, at import

    def wrap(fn: F) -> F:
        registry[name] = fn
        LABELLER_FIELDS[name] = columns
        return fn
    return wrap


def labels_schema(names: list[str]) -> RecordSchema:
    """The schema of labels.parquet from these labellers, in config order: the core label columns, `reward_<name>`
    per labeller, and the first labeller's own fields (the combined row carries only the first's, label.py)."""
    unknown = [n for n in names if n not in LABELLER_FIELDS]
    if unknown:
        raise KeyError(f"labellers {unknown} are not registered; known: {sorted(LABELLER_FIELDS)}")
    rewards = [Column(f"reward_{n}", pa.float64()) for n in dict.fromkeys(names)]
    return LABELS.extend(rewards + list(LABELLER_FIELDS[names[0]]), kind=f"labels of {'+'.join(names)}")


def scorable(rows: list[dict], problems: dict[str, dict], allow_empty: bool = True
             ) -> tuple[list[dict | None], list[tuple[int, dict, str]]]:
    """For a model labeller: (a failure label per row that cannot be scored — no problem with a prompt, a
    completion that is not a string, or an empty one unless `allow_empty` — else None; (index, problem, text) of
    the rows to score)."""
    labels: list[dict | None] = [None] * len(rows)
    todo = []
    for index, row in enumerate(rows):
        problem, text = problems.get(row.get("prompt_id")), row.get("text")
        if problem is None or not isinstance(problem.get("prompt"), str):
            labels[index] = failure_label(f"row {index}: no problem with a prompt for {row.get('prompt_id')!r}")
        elif not isinstance(text, str):
            labels[index] = failure_label(f"row {index}: completion is a {type(text).__name__}, expected a string")
        elif not allow_empty and not text.strip():
            labels[index] = failure_label(f"row {index}: no completion text to score")
        else:
            todo.append((index, problem, text))
    return labels, todo


def failure_label(reason: str, status: str = "error") -> dict:
    """The label of a sample that could not be judged: reward 0, never correct, with the reason."""
    return {"reward": 0.0, "correct": False, "pred": None, "status": status, "error": reason}


def require_field(problem: dict, field: str, kind: type = str) -> object:
    """`problem[field]`, or a ValueError naming the problem, the field and what was expected."""
    value = problem.get(field)
    if not isinstance(value, kind):
        got = "missing" if value is None else f"a {type(value).__name__}"
        raise ValueError(f"problem {problem.get('id', '?')!r}: field {field!r} is {got}, expected a {kind.__name__}")
    return value
