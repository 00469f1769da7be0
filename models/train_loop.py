"""One optimisation loop for every method (SFT, reward model, DPO, RRTF), plain torch, data parallel aware.

A method (models/methods/) says what a training *unit* is (an example, a packed row, a preference pair,
a ranked group), how units become tensors and what the loss is. The loop owns the rest: the deterministic
order of units in every epoch, global batches split over workers and gradient-accumulation micro-batches,
loss normalisation by the *global* item count (so N workers compute what one worker with the same global batch
would), clipping, the schedule, per-step metrics, and checkpoints that restore the exact data position.
"""
from __future__ import annotations

import contextlib
import random
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Protocol

import torch
import torch.distributed as dist

from models.optim import OptimConfig, lr_factor


class TrainMethod(Protocol):
    def epoch_units(self, epoch: int, seed: int) -> list[Any]: ...  # the epoch's units, in training order
    def collate(self, units: list[Any]) -> dict[str, torch.Tensor]: ...
    def count(self, units: list[Any]) -> float: ...  # items the loss is averaged over (tokens, pairs, groups)
    def loss(self, model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict]: ...
    def unit_examples(self, unit: Any) -> list[int]: ...  # dataset rows in a unit (data-position log)
    def unit_tokens(self, unit: Any) -> int: ...


@dataclass
class TrainState:
    """Everything besides the weights needed to continue exactly where a run stopped."""

    step: int = 0  # optimizer steps done == global batches consumed
    optimizer: dict | None = None
    scheduler: dict | None = None
    rng: dict | None = None
    history: list[dict] = field(default_factory=list)  # per-step metrics so far (the loss curve continues)


@dataclass(frozen=True)
class StepInfo:
    step: int  # 1-based: steps done
    metrics: dict  # loss, lr, grad_norm, tokens_per_s, + the method's own
    example_ids: list[int]  # dataset rows of this global batch (all workers)
    epoch: int


def global_batches(method: TrainMethod, batch_size: int, seed: int, start_step: int) -> Iterator[tuple[int, list]]:
    """(epoch, units) for every global batch from `start_step` on. The order is a pure function of (seed, epoch,
    data), so skipping `start_step` batches lands on the exact data position; the last batch of an epoch may be
    smaller, so no unit is ever skipped."""
    epoch, step = 0, 0
    while True:
        units = method.epoch_units(epoch, seed)
        if not units:
            raise ValueError("no training units")
        batches = [units[i: i + batch_size] for i in range(0, len(units), batch_size)]
        for batch in batches:
            if step >= start_step:
                yield epoch, batch
            step += 1
        epoch += 1


def capture_rng() -> dict:
    return {"python": random.getstate(), "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None}


def restore_rng(state: dict) -> None:
    random.setstate(state["python"])
    torch.set_rng_state(state["torch"])
    if state.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def autocast(precision: str, device: torch.device):
    """bf16 autocast where the device runs it fast (CUDA with bf16); fp32 otherwise (CPU without AMX/AVX-512
    runs bf16 ~100x slower: docs/rft-calibration.md)."""
    if precision == "bf16" and device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _all_reduce(values: list[float], device: torch.device) -> list[float]:
    if not (dist.is_available() and dist.is_initialized()):
        return values
    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    return tensor.tolist()


def run_training(model: torch.nn.Module, method: TrainMethod, cfg: OptimConfig, device: torch.device,
                 rank: int = 0, world: int = 1, state: TrainState | None = None,
                 on_step: Callable[[StepInfo], None] | None = None,
                 on_checkpoint: Callable[[TrainState], None] | None = None) -> TrainState:
    """Train for cfg.steps optimizer steps (continuing from `state`); returns the final state."""
    state = state or TrainState()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(
        [{"params": [p for p in params if p.ndim >= 2], "weight_decay": cfg.weight_decay},
         {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0}], lr=cfg.lr, betas=(0.9, 0.95))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, cfg))
    if state.optimizer is not None:
        optimizer.load_state_dict(state.optimizer)
        scheduler.load_state_dict(state.scheduler)
    if state.rng is not None:
        restore_rng(state.rng)
    else:
        torch.manual_seed(cfg.seed)
        random.seed(cfg.seed)
    model.train()
    batches = global_batches(method, cfg.batch_size, cfg.seed, state.step)
    while state.step < cfg.steps:
        started = time.perf_counter()
        epoch, units = next(batches)
        metrics = _one_step(model, method, cfg, device, units, rank, world, optimizer)
        scheduler.step()
        state.step += 1
        tokens = sum(method.unit_tokens(u) for u in units)  # every rank holds the whole global batch
        metrics |= {"step": state.step, "lr": optimizer.param_groups[0]["lr"],
                    "tokens_per_s": tokens / max(time.perf_counter() - started, 1e-9), "epoch": epoch}
        state.history.append(metrics)
        if on_step is not None:
            on_step(StepInfo(state.step, metrics, [i for u in units for i in method.unit_examples(u)], epoch))
        if on_checkpoint is not None and (state.step % cfg.checkpoint_every == 0 or state.step == cfg.steps):
            state.optimizer, state.scheduler = optimizer.state_dict(), scheduler.state_dict()
            state.rng = capture_rng()
            on_checkpoint(state)
    model.eval()
    return state


def _one_step(model, method: TrainMethod, cfg: OptimConfig, device, units: list, rank: int, world: int,
              optimizer) -> dict:
    """Forward/backward over this worker's micro-batches, then one clipped optimizer step. Each micro-batch's
    summed loss is divided by the global item count (and multiplied by `world`, since DDP averages gradients),
    so the update equals one big batch on one worker."""
    mine = units[rank::world]
    micro = [mine[i::cfg.grad_accum] for i in range(cfg.grad_accum)]
    global_count = max(method.count(units), 1.0)  # every rank holds the whole global batch: no collective needed
    optimizer.zero_grad(set_to_none=True)
    loss_sum, extra = 0.0, {}
    for index, part in enumerate(micro):
        # a worker with nothing left in a short last batch still runs a zero-weight pass: DDP needs every rank
        weight = 1.0 if part else 0.0
        batch = {k: v.to(device) for k, v in method.collate(part or units[:1]).items()}
        sync = index == len(micro) - 1 or not hasattr(model, "no_sync")
        with (contextlib.nullcontext() if sync else model.no_sync()), autocast(cfg.precision, device):
            summed, parts = method.loss(model, batch)
            (summed * weight * world / global_count).backward()
        loss_sum += float(summed.detach()) * weight
        for key, value in parts.items():
            extra[key] = extra.get(key, 0.0) + float(value) * weight
    grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
    optimizer.step()
    reduced = _all_reduce([loss_sum, *extra.values()], device)
    return {"loss": reduced[0] / global_count, "grad_norm": float(grad_norm),
            **{k: v / global_count for k, v in zip(extra, reduced[1:])}}
