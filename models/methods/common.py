"""Helpers the training methods share: the per-epoch order of units and right-padding of token sequences."""
from __future__ import annotations

import random

import torch

from models.losses import get_loss


def epoch_order(n: int, seed: int, epoch: int) -> list[int]:
    """A fresh permutation of range(n) per epoch, a pure function of (seed, epoch): skipping k batches of it
    lands on the exact data position of an interrupted run (resume)."""
    order = list(range(n))
    random.Random(seed * 1_000_003 + epoch).shuffle(order)
    return order


def pad_sequences(seqs: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded ids (N, T) and attention mask (N, T), T the longest sequence."""
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)  # (N, T)
    attention = torch.zeros((len(seqs), width), dtype=torch.long)  # (N, T)
    for i, s in enumerate(seqs):
        ids[i, : len(s)], attention[i, : len(s)] = torch.tensor(s), 1
    return ids, attention


class NamedLoss:
    """Mixin for a method dataclass with a `loss_name` field: its loss is the registered function of that name
    (models/losses.py), never computed inline or switched on."""

    loss_name: str

    @property
    def loss_fn(self):
        return get_loss(self.loss_name)
