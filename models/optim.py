"""Optimisation settings shared by every training method, and the learning-rate schedule."""
from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class OptimConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    steps: int = Field(default=600, ge=1, description="optimizer steps")
    batch_size: int = Field(default=32, ge=1, description="global batch (split across workers)")
    lr: float = Field(default=3e-3, gt=0)
    min_lr_ratio: float = Field(default=0.1, ge=0, le=1)
    warmup_steps: int = Field(default=30, ge=0)
    weight_decay: float = Field(default=0.01, ge=0)
    grad_clip: float = Field(default=1.0, gt=0)
    max_len: int = Field(default=384, ge=8, description="examples are truncated to this many tokens")
    loss: str = "sft"
    seed: int = 0
    grad_accum: int = Field(default=1, ge=1, description="micro-batches per optimizer step (per worker)")
    precision: Literal["fp32", "bf16"] = Field(default="fp32", description="bf16 autocast where the device has it")
    checkpoint_every: int = Field(default=100, ge=1, description="optimizer steps between checkpoints")


def warmup_cosine(step: int, total: int, warmup: int, min_ratio: float = 0.0) -> float:
    """Linear warm-up then cosine decay to `min_ratio` at `total` (0: annealed to zero, as the N+ details)."""
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def lr_factor(step: int, cfg: OptimConfig) -> float:
    """The usual LM fine-tuning schedule: warm-up, then cosine decay to min_lr_ratio."""
    return warmup_cosine(step, cfg.steps, cfg.warmup_steps, cfg.min_lr_ratio)
