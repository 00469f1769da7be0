"""Advantage estimators, one registry entry each; a recipe names its estimator in config (`rl.advantage`).

Shapes: B sequences (prompt × sample), T response tokens. `mask` (B, T) is 1 on response tokens (up to and
including EOS), 0 on padding. Every estimator returns (advantages (B, T), returns (B, T)); returns feed the
value loss and are only meaningful for GAE (the critic-free estimators return the advantages again).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from models.registry import Registry

ADVANTAGES = Registry("advantage estimator")


@dataclass(frozen=True)
class AdvantageInputs:
    scores: torch.Tensor  # (B,) sequence reward (labeller, RM at EOS, minus missing-EOS penalty)
    groups: torch.Tensor  # (B,) long: the prompt each sequence answers (GRPO/RLOO baselines are per group)
    mask: torch.Tensor  # (B, T) response tokens
    token_rewards: torch.Tensor | None = None  # (B, T) per-token reward (score at EOS − β·KL), for GAE
    values: torch.Tensor | None = None  # (B, T) critic's values, for GAE


@dataclass(frozen=True)
class AdvantageConfig:
    gamma: float = 1.0
    lam: float = 0.95
    eps: float = 1e-6


def _broadcast(per_sequence: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:  # (B,) → (B, T)
    return per_sequence[:, None] * mask


def _group_stats(scores: torch.Tensor, groups: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-sequence (group mean, group std (unbiased, as DeepSeekMath's code), group size), each (B,)."""
    _, index, counts = torch.unique(groups, return_inverse=True, return_counts=True)
    sums = torch.zeros(len(counts), dtype=scores.dtype).index_add_(0, index, scores)
    mean = sums / counts
    squares = torch.zeros(len(counts), dtype=scores.dtype).index_add_(0, index, (scores - mean[index]) ** 2)
    std = torch.sqrt(squares / (counts - 1).clamp(min=1))
    return mean[index], std[index], counts[index].to(scores.dtype)


@ADVANTAGES.register("grpo")
def grpo(inp: AdvantageInputs, cfg: AdvantageConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """DeepSeekMath: (r − mean(group)) / std(group), the same for every token of the sequence."""
    mean, std, _ = _group_stats(inp.scores, inp.groups)
    adv = _broadcast((inp.scores - mean) / (std + cfg.eps), inp.mask)
    return adv, adv


@ADVANTAGES.register("dr_grpo")
def dr_grpo(inp: AdvantageInputs, cfg: AdvantageConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """Dr. GRPO (Liu et al. 2025): r − mean(group), no division by the std (which favours easy/hard groups)."""
    mean, _, _ = _group_stats(inp.scores, inp.groups)
    adv = _broadcast(inp.scores - mean, inp.mask)
    return adv, adv


@ADVANTAGES.register("rloo")
def rloo(inp: AdvantageInputs, cfg: AdvantageConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """RLOO (Ahmadian et al. 2024): r − mean of the *other* samples of the group = (r − mean)·G/(G−1)."""
    mean, _, size = _group_stats(inp.scores, inp.groups)
    adv = _broadcast((inp.scores - mean) * size / (size - 1).clamp(min=1), inp.mask)
    return adv, adv


@ADVANTAGES.register("gae")
def gae(inp: AdvantageInputs, cfg: AdvantageConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation (Schulman et al. 2016) over the response tokens, as the N+ details run
    it (γ = 1, λ = 0.95): δ_t = r_t + γ·V_{t+1} − V_t, A_t = δ_t + γλ·A_{t+1}; V after the last token is 0."""
    if inp.token_rewards is None or inp.values is None:
        raise ValueError("gae needs token_rewards and values (a critic): use it with the ppo recipe")
    rewards, values, mask = inp.token_rewards * inp.mask, inp.values * inp.mask, inp.mask
    advantages = torch.zeros_like(rewards)
    running = torch.zeros(rewards.shape[0], dtype=rewards.dtype)
    for t in reversed(range(rewards.shape[1])):
        next_value = values[:, t + 1] if t + 1 < rewards.shape[1] else torch.zeros_like(running)
        delta = rewards[:, t] + cfg.gamma * next_value - values[:, t]
        running = (delta + cfg.gamma * cfg.lam * running) * mask[:, t]  # padding ends the sequence
        advantages[:, t] = running
    return advantages, (advantages + values) * mask
