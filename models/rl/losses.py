"""Policy and value losses, KL estimators and the KL controllers of online RL (shapes: (B, T) response tokens).

The policy loss is PPO's clipped ratio (Schulman et al. 2017) with DAPO's asymmetric "clip-higher" bounds as an
option; how per-token terms become one number is a registered aggregation, because that choice *is* the
difference between GRPO (mean per sequence, then over sequences), DAPO (mean over all tokens) and Dr. GRPO (sum
per sequence over a constant length).
"""
from __future__ import annotations

import torch

from models.registry import Registry

AGGREGATIONS = Registry("loss aggregation")
KL_ESTIMATORS = Registry("KL estimator")


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return (x * mask).sum() / mask.sum().clamp(min=1)


def whiten(x: torch.Tensor, mask: torch.Tensor, shift_mean: bool = True, eps: float = 1e-8) -> torch.Tensor:
    """(x − mean)/std over the masked entries; `shift_mean=False` keeps the mean (the N+ details whiten rewards
    without shifting them, and advantages with)."""
    mean = masked_mean(x, mask)
    var = masked_mean((x - mean) ** 2, mask)
    out = (x - mean) * torch.rsqrt(var + eps)
    return (out + mean if not shift_mean else out) * mask


@AGGREGATIONS.register("seq_mean_token_mean")
def seq_mean_token_mean(per_token: torch.Tensor, mask: torch.Tensor, max_len: int) -> torch.Tensor:
    """GRPO as DeepSeekMath wrote it: each sequence's token mean, then the mean over sequences."""
    per_seq = (per_token * mask).sum(-1) / mask.sum(-1).clamp(min=1)
    return per_seq.mean()


@AGGREGATIONS.register("token_mean")
def token_mean(per_token: torch.Tensor, mask: torch.Tensor, max_len: int) -> torch.Tensor:
    """DAPO: the mean over every response token of the batch (long answers weigh by their length)."""
    return masked_mean(per_token, mask)


@AGGREGATIONS.register("seq_mean_token_sum_norm")
def seq_mean_token_sum_norm(per_token: torch.Tensor, mask: torch.Tensor, max_len: int) -> torch.Tensor:
    """Dr. GRPO: each sequence's token sum over a constant (the generation budget), then the mean: no length
    bias from dividing by each answer's own length."""
    return ((per_token * mask).sum(-1) / max_len).mean()


# what a micro-batch's share of a minibatch is, per aggregation (so gradient accumulation equals one big batch)
seq_mean_token_mean.share_by = seq_mean_token_sum_norm.share_by = "sequences"
token_mean.share_by = "tokens"


def policy_loss(logp: torch.Tensor, old_logp: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor,
                clip_low: float = 0.2, clip_high: float = 0.2, aggregation: str = "seq_mean_token_mean",
                max_len: int = 1) -> tuple[torch.Tensor, dict]:
    """PPO's clipped surrogate, −min(ρA, clip(ρ, 1−ε_low, 1+ε_high)A) per token, aggregated; plus the share of
    tokens where the clip was active and the approximate KL between the old and new policy."""
    ratio = torch.exp(logp - old_logp)  # (B, T)
    unclipped = -advantages * ratio
    clipped = -advantages * torch.clamp(ratio, 1 - clip_low, 1 + clip_high)
    per_token = torch.maximum(unclipped, clipped)
    loss = AGGREGATIONS.lookup(aggregation)(per_token, mask, max_len)
    with torch.no_grad():
        clip_frac = masked_mean((clipped > unclipped).float(), mask)
        approx_kl = masked_mean(0.5 * (logp - old_logp) ** 2, mask)
    return loss, {"clip_frac": float(clip_frac), "approx_kl": float(approx_kl)}


def value_loss(values: torch.Tensor, old_values: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor,
               clip: float = 0.2) -> tuple[torch.Tensor, dict]:
    """The N+ details' clipped value loss: ½·max((V − R)², (V_clipped − R)²), V_clipped within ±clip of the
    rollout-time value; token mean."""
    clipped = old_values + torch.clamp(values - old_values, -clip, clip)
    per_token = 0.5 * torch.maximum((values - returns) ** 2, (clipped - returns) ** 2)
    with torch.no_grad():
        clip_frac = masked_mean(((clipped - returns) ** 2 > (values - returns) ** 2).float(), mask)
    return masked_mean(per_token, mask), {"value_clip_frac": float(clip_frac)}


@KL_ESTIMATORS.register("k1")
def kl_k1(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """log π − log π_ref per token: unbiased, can be negative; InstructGPT subtracts β·k1 from the reward."""
    return logp - ref_logp


@KL_ESTIMATORS.register("k2")
def kl_k2(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    return 0.5 * (logp - ref_logp) ** 2


@KL_ESTIMATORS.register("k3")
def kl_k3(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """Schulman's k3, exp(ref − logp) − (ref − logp) − 1 ≥ 0: GRPO's KL loss term (low variance, unbiased)."""
    log_ratio = ref_logp - logp
    return torch.exp(log_ratio) - log_ratio - 1


class FixedKL:
    def __init__(self, coef: float):
        self.value = coef

    def update(self, current_kl: float, n_steps: int) -> None:
        pass

    def state_dict(self) -> dict:
        return {"value": self.value}

    def load_state_dict(self, state: dict) -> None:
        self.value = state["value"]


class AdaptiveKL(FixedKL):
    """Ziegler et al. 2019: β ← β·(1 + clip(KL/target − 1, ±0.2)·n/horizon), keeping the policy's KL from the
    reference near `target` (InstructGPT: init 0.15, target 6, horizon 10000)."""

    def __init__(self, coef: float, target: float, horizon: int):
        super().__init__(coef)
        self.target, self.horizon = target, horizon

    def update(self, current_kl: float, n_steps: int) -> None:
        error = max(-0.2, min(0.2, current_kl / self.target - 1))
        self.value *= 1 + error * n_steps / self.horizon


def entropy_from_logits(logits: torch.Tensor) -> torch.Tensor:  # (B, T, V) → (B, T)
    logp = torch.log_softmax(logits.float(), dim=-1)
    return -(logp.exp() * logp).sum(-1)


def shaped_token_rewards(scores: torch.Tensor, kl: torch.Tensor, mask: torch.Tensor, beta: float) -> torch.Tensor:
    """InstructGPT's per-token reward: −β·KL on every response token, plus the sequence score on its last token
    (the EOS, where the reward model reads it). (B,), (B, T), (B, T) → (B, T)."""
    rewards = -beta * kl * mask
    last = (mask.sum(-1) - 1).clamp(min=0).long()  # (B,) index of the last response token
    rewards[torch.arange(len(scores)), last] += scores
    return rewards


def missing_eos_penalty(scores: torch.Tensor, has_eos: torch.Tensor, penalty: float | None) -> torch.Tensor:
    """The N+ "EOS trick": a response that ran out of budget without EOS gets `penalty` instead of its score."""
    if penalty is None:
        return scores
    return torch.where(has_eos, scores, torch.full_like(scores, penalty))

