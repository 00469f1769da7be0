"""The SFT optimisation loop as plain torch (no Ray): batches, schedule, one step. Ray Train wraps it."""
from __future__ import annotations

import math
import random
from typing import Callable, Iterator, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field

from models.losses import get_loss
from models.sft_data import TokenizedExample, collate


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


def lr_factor(step: int, cfg: OptimConfig) -> float:
    """Linear warm-up then cosine decay to min_lr_ratio (the usual LM fine-tuning schedule)."""
    if step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    progress = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def batch_stream(
    examples: list[TokenizedExample], per_worker_batch: int, seed: int, rank: int, world: int,
    bucket_batches: int = 16,
) -> Iterator[list[TokenizedExample]]:
    """Endless shuffled epochs; each worker takes its own slice of every global batch (data parallel).

    Within windows of `bucket_batches` global batches, examples are grouped by length before batching: on CPU
    compute is the bottleneck and padding to the longest example in a random batch wastes ~30% of it.
    """
    epoch = 0
    global_batch = per_worker_batch * world
    window = global_batch * bucket_batches
    while True:
        rng = random.Random(seed * 1_000_003 + epoch)
        order = list(range(len(examples)))
        rng.shuffle(order)
        batches = []
        for w in range(0, len(order), window):
            chunk = sorted(order[w: w + window], key=lambda i: len(examples[i].input_ids))
            batches += [chunk[s: s + global_batch] for s in range(0, len(chunk) - global_batch + 1, global_batch)]
        rng.shuffle(batches)
        for batch in batches:
            yield [examples[i] for i in batch[rank * per_worker_batch: (rank + 1) * per_worker_batch]]
        if not batches:  # fewer examples than one global batch: sample with replacement rather than stall
            yield [examples[rng.randrange(len(examples))] for _ in range(per_worker_batch)]
        epoch += 1


def run_sft(
    model: torch.nn.Module,
    examples: list[TokenizedExample],
    cfg: OptimConfig,
    pad_id: int,
    device: torch.device,
    rank: int = 0,
    world: int = 1,
    on_step: Callable[[int, float, float], None] | None = None,
) -> list[float]:
    """Train `model` for cfg.steps optimizer steps; returns the per-step losses of this worker."""
    if not examples:
        raise ValueError("no training examples")
    loss_fn = get_loss(cfg.loss)
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.ndim < 2]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=cfg.lr, betas=(0.9, 0.95),
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, cfg))
    per_worker = max(1, cfg.batch_size // world)
    stream = batch_stream(examples, per_worker, cfg.seed, rank, world)
    losses = []
    model.train()
    for step in range(cfg.steps):
        batch = {k: v.to(device) for k, v in collate(next(stream), pad_id).items()}
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        loss = loss_fn(logits, batch["input_ids"], batch["loss_mask"])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optimizer.step()
        scheduler.step()
        losses.append(loss.item())
        if on_step is not None:
            on_step(step, losses[-1], scheduler.get_last_lr()[0])
    model.eval()
    return losses
