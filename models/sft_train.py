"""SFT in-process (benchmarks, tests): the training stages' loop without Ray."""
from __future__ import annotations

from typing import Callable

import torch
from models.optim import OptimConfig
from models.sft_data import TokenizedExample


def run_sft(
    model: torch.nn.Module,
    examples: list[TokenizedExample],
    cfg: OptimConfig,
    pad_id: int,
    device: torch.device,
    on_step: Callable[[int, float, float], None] | None = None,
) -> list[float]:
    """SFT for cfg.steps steps in this process (length-bucketed batches); returns the per-step losses. The
    same loop as the training stages (models/train_loop.py), without Ray."""
    from models.train_loop import run_training
    from models.methods.sft import SFTMethod

    if not examples:
        raise ValueError("no training examples")
    callback = None if on_step is None else (lambda i: on_step(i.step - 1, i.metrics["loss"], i.metrics["lr"]))
    state = run_training(model, SFTMethod(examples, pad_id, "bucketed", cfg.batch_size), cfg, device,
                         on_step=callback)
    return [h["loss"] for h in state.history]
