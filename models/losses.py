"""Losses as pure functions, registered by name so configs can pick them."""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

LOSSES: dict[str, Callable[..., torch.Tensor]] = {}


def register_loss(name: str):
    def wrap(fn):
        LOSSES[name] = fn
        return fn
    return wrap


def get_loss(name: str) -> Callable[..., torch.Tensor]:
    if name not in LOSSES:
        raise KeyError(f"unknown loss {name!r}; known: {sorted(LOSSES)}")
    return LOSSES[name]


@register_loss("sft")
def sft_loss(
    logits: torch.Tensor,  # (B, T, V) next-token logits at each position
    input_ids: torch.Tensor,  # (B, T)
    loss_mask: torch.Tensor,  # (B, T) 1 where the token is a completion token to learn, 0 for prompt/padding
) -> torch.Tensor:
    """Mean cross-entropy over completion tokens only (prompt tokens are given, not learned)."""
    shift_logits = logits[:, :-1, :]  # (B, T-1, V) predicts token t+1
    targets = input_ids[:, 1:]  # (B, T-1)
    mask = loss_mask[:, 1:].to(shift_logits.dtype)  # (B, T-1)
    token_nll = F.cross_entropy(shift_logits.reshape(-1, shift_logits.size(-1)), targets.reshape(-1),
                                reduction="none").view_as(mask)
    return (token_nll * mask).sum() / mask.sum().clamp(min=1.0)
