"""The labeller registry: every way of turning a sample into a reward, chosen by name in config.

Two kinds, one output shape (a dict with at least `reward`, `correct`, `status`, `error`):
- row labellers, `fn(completion, problem, options) -> dict`: pure per sample (answer checks, sandboxed programs
  and unit tests); the label stage fans them out over Ray in chunks;
- batch labellers, `fn(rows, problems, options) -> list[dict]`: hold a model (reward-model scoring on Ray
  actors) and see the whole stage's rows at once.

Modules that define labellers register them on import; tasks/labelling/label.py imports them all.
"""
from __future__ import annotations

from typing import Protocol

from pydantic import BaseModel, ConfigDict, Field

from models.registry import Registry
from tasks.labelling.sandbox import SandboxLimits


class RewardModelOptions(BaseModel):
    """Where the reward model is and how to run it (InstructGPT-style scorer: reward read at the EOS token)."""

    model_config = ConfigDict(extra="forbid")
    model: str = Field(description="an HF folder with a sequence-classification (value) head, local or in the store")
    batch_size: int = Field(default=16, ge=1)
    max_len: int = Field(default=1024, ge=8)
    num_scorers: int = Field(default=1, ge=1)
    cpus_per_scorer: float = Field(default=1.0, gt=0)
    use_gpu: bool = False


class LabelOptions(BaseModel):
    """What labellers may need besides the sample and its problem."""

    model_config = ConfigDict(extra="forbid")
    sandbox: SandboxLimits = SandboxLimits()
    reward_model: RewardModelOptions | None = None


class RowLabeller(Protocol):
    def __call__(self, completion: str, problem: dict, options: LabelOptions) -> dict: ...


class BatchLabeller(Protocol):
    def __call__(self, rows: list[dict], problems: dict[str, dict], options: LabelOptions) -> list[dict]: ...


ROW_LABELLERS = Registry("row labeller")
BATCH_LABELLERS = Registry("batch labeller")
register_labeller = ROW_LABELLERS.register
register_batch_labeller = BATCH_LABELLERS.register


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
