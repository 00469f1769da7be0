"""What the online-RL learner roles (the policy trainer, the PPO critic) share: one trained module, an AdamW
optimiser with the run's annealed schedule, micro-batching, and the weights and state a checkpoint holds."""
from __future__ import annotations

import torch

from models.optim import warmup_cosine
from models.train_loop import capture_rng, restore_rng
from ray_cluster.rl_config import OnlineRLConfig


def disable_dropout(model: torch.nn.Module) -> None:
    """The N+ details: dropout off, so the trainer's log-probs of a rollout equal the sampler's."""
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0


class Learner:
    """Base of a Ray actor body that trains `self.model`; subclasses set it and call `_setup`."""

    model: torch.nn.Module
    cfg: OnlineRLConfig

    def _setup(self, model: torch.nn.Module, cfg: OnlineRLConfig, lr: float, weight_decay: float) -> None:
        self.model, self.cfg, optim = model, cfg, cfg.optim
        disable_dropout(model)
        model.train()
        self.optimizer = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.95), weight_decay=weight_decay)
        total = cfg.iterations * optim.epochs * optim.minibatches  # optimiser steps in the whole run
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda s: warmup_cosine(s, total, optim.warmup_updates) if optim.anneal else 1.0)

    def _micro(self, batch: dict) -> list[dict]:
        """The batch in slices of `optim.micro_batch_size` rows (all of it when unset)."""
        rows = len(batch["input_ids"])
        size = self.cfg.optim.micro_batch_size or rows
        return [{k: v[i: i + size] for k, v in batch.items()} for i in range(0, rows, size)]

    def weights(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().to("cpu", copy=True) for k, v in self.model.state_dict().items()}

    def state(self) -> dict:
        """Everything but the weights needed to continue exactly: optimiser, schedule, RNG."""
        return {"optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                "rng": capture_rng()}

    def restore(self, weights: dict[str, torch.Tensor], state: dict) -> None:
        self.model.load_state_dict(weights)
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        restore_rng(state["rng"])
