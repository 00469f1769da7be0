"""What a training method is made of (one registry entry, models/methods/__init__.py) and the config fields
every method shares.

The base `TrainConfig` holds optimisation, model size, init seed, resources and LoRA; a method subclasses it
with its own fields (SFT: `batching`, `pack_len`; DPO: `beta`) and names itself in `method`, so `optim.loss`
defaults to, and is checked against, the losses of that method's entry.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from transformers import PreTrainedTokenizerBase

from models.losses import LOSSES
from models.methods.model_kinds import ModelKind
from models.optim import OptimConfig
from models.tiny_llama import ModelSize
from models.train_loop import TrainMethod


class TrainResources(BaseModel):
    model_config = ConfigDict(extra="forbid")
    num_workers: int = Field(default=1, ge=1, description="data-parallel workers")
    use_gpu: bool = Field(default=False, description="one GPU per worker")
    cpus_per_worker: int = Field(default=2, ge=1, description="CPU threads each worker uses")
    strategy: Literal["ddp", "fsdp"] = Field(default="ddp", description="fsdp shards models that don't fit")


class LoraOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    r: int = Field(default=8, ge=1)
    alpha: int = Field(default=16, ge=1)
    dropout: float = Field(default=0.0, ge=0, lt=1)
    target_modules: list[str] = Field(default_factory=lambda: ["q_proj", "v_proj"], min_length=1)


class TrainConfig(BaseModel):
    """Fields of every method's config. Not used on its own: a stage takes its method's subclass."""

    model_config = ConfigDict(extra="forbid")
    method: ClassVar[str | None] = None  # the registered method this config trains (set by each subclass)
    optim: OptimConfig = OptimConfig()
    model: ModelSize = ModelSize()
    init_seed: int = Field(default=0, description="seed of the random init when training from scratch")
    resources: TrainResources = TrainResources()
    lora: LoraOptions | None = Field(default=None, description="train LoRA adapters instead of all weights")

    @model_validator(mode="before")
    @classmethod
    def _default_loss(cls, data: Any) -> Any:
        """`optim.loss` not given → the method's own loss (OptimConfig's shared default is SFT's), so a YAML
        `optim: {steps: 100}` under a DPO config trains DPO."""
        if cls.method is None or not isinstance(data, dict):
            return data
        default = _entry(cls.method).losses[0]
        optim = data.get("optim")
        if optim is None:
            return {**data, "optim": {"loss": default}}
        if isinstance(optim, dict) and "loss" not in optim:
            return {**data, "optim": {**optim, "loss": default}}  # a copy: YAML anchors share the dict
        if isinstance(optim, OptimConfig) and "loss" not in optim.model_fields_set:
            return {**data, "optim": optim.model_copy(update={"loss": default})}
        return data

    @model_validator(mode="after")
    def _consistent(self):
        per_step = self.resources.num_workers * self.optim.grad_accum
        if self.optim.batch_size % per_step:
            raise ValueError(f"optim.batch_size={self.optim.batch_size} is not divisible by resources.num_workers "
                             f"x optim.grad_accum = {per_step}")
        if self.method is not None:
            allowed = list(_entry(self.method).losses)
            if self.optim.loss not in allowed:
                what = (f"{self.optim.loss!r} does not train" if self.optim.loss in LOSSES
                        else f"unknown loss {self.optim.loss!r} for")
                raise ValueError(f"optim.loss: {what} method {self.method!r}; allowed: {allowed}")
        if self.resources.strategy == "fsdp" and not self.resources.use_gpu:
            raise ValueError("resources.strategy=fsdp needs resources.use_gpu=true (FSDP on CPU workers is not "
                             "supported here; use ddp)")
        return self


def _entry(name: str) -> "MethodEntry":
    from models.methods import get_method  # the registry imports this module: look it up at validation time

    return get_method(name)


@dataclass(frozen=True)
class MethodData:
    """What a method's data builder returns: the data its TrainMethod is built from (shipped to every worker)
    and the counts the stage reports."""

    data: Any
    rows: int  # training rows: examples, pairs or groups
    tokens: int


class EmptyTable(ValueError):
    """A table the method needs has no rows; the stage names the artifact it came from."""

    def __init__(self, input: str, table: str, why: str):
        super().__init__(f"{table} is empty: {why}")
        self.input, self.table, self.why = input, table, why


Rows = dict[str, list[dict]]  # input name (as in `MethodEntry.tables`) → rows of the table read from it


@dataclass(frozen=True)
class MethodEntry:
    """One training method: everything that differs between methods, so the stage, the Ray Train worker and
    the checks look it up by name instead of branching on it."""

    name: str
    config: type[TrainConfig]  # its config model; `config.method == name`
    losses: tuple[str, ...]  # the registered losses it trains with (models/losses.py); the first is the default
    # input name → table the stage reads from that input artifact, given the config; None when the stage
    # gathers the rows itself (SFT: any number of `SFTSource`s, each naming its table) as `{"examples": rows}`
    tables: Callable[[TrainConfig], dict[str, str]] | None
    build_data: Callable[[Rows, PreTrainedTokenizerBase, TrainConfig], MethodData]  # pure: rows → data
    model: ModelKind  # what it trains (causal LM or reward model) and how the loop calls it
    make: Callable[[Any, TrainConfig, int], TrainMethod]  # (MethodData.data, config, pad id) → the loop's method
