"""Losses as pure functions, registered by name so configs can pick them (`optim.loss`).

A training method (models/methods/) calls the loss its config names through `get_loss`, never its own copy;
the losses one method allows share a signature (pairwise_rm and ranking_rm both take `(rewards, valid)`), so
the method does not branch on the name.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from models.registry import Registry

LOSSES = Registry("loss")
register_loss = LOSSES.register


def get_loss(name: str) -> Callable[..., torch.Tensor]:
    return LOSSES.lookup(name)


def token_logprobs(
    logits: torch.Tensor,  # (B, T, V)
    input_ids: torch.Tensor,  # (B, T)
) -> torch.Tensor:
    """log p(token t | tokens < t) for t >= 1, shape (B, T-1)."""
    logp = torch.log_softmax(logits[:, :-1, :].float(), dim=-1)  # (B, T-1, V)
    return logp.gather(-1, input_ids[:, 1:, None]).squeeze(-1)  # (B, T-1)


def sequence_logprobs(
    logits: torch.Tensor,  # (B, T, V)
    input_ids: torch.Tensor,  # (B, T)
    loss_mask: torch.Tensor,  # (B, T) 1 on response tokens
    average: bool = False,
) -> torch.Tensor:
    """Summed (or per-token averaged) log-probability of each row's response tokens, shape (B,)."""
    mask = loss_mask[:, 1:].float()  # (B, T-1)
    total = (token_logprobs(logits, input_ids) * mask).sum(-1)  # (B,)
    return total / mask.sum(-1).clamp(min=1.0) if average else total


@register_loss("sft")
def sft_token_sum_loss(
    logits: torch.Tensor,  # (B, T, V) next-token logits at each position
    input_ids: torch.Tensor,  # (B, T)
    loss_mask: torch.Tensor,  # (B, T) 1 where the token is a completion token to learn, 0 for prompt/padding
) -> torch.Tensor:
    """Summed NLL of the completion tokens (prompt tokens are given, not learned), a scalar. A sum, not a mean:
    the loop divides by the token count of the whole global batch, so every worker and micro-batch weighs a
    token the same (models/train_loop.py)."""
    mask = loss_mask[:, 1:].float()  # (B, T-1): position t's mask applies to the prediction of token t
    return -(token_logprobs(logits, input_ids) * mask).sum()


@register_loss("pairwise_rm")
def pairwise_rm_loss(
    rewards: torch.Tensor,  # (B, 2) reward of the preferred response (column 0) and of the other one (column 1)
    valid: torch.Tensor | None = None,  # (B, 2) ignored (a pair has both): ranking_rm's signature
) -> torch.Tensor:
    """Per-pair loss -log σ(r_chosen - r_rejected) (InstructGPT eq. 1 with K = 2), shape (B,)."""
    if rewards.shape[-1] != 2:
        raise ValueError(f"pairwise_rm needs groups of 2 (chosen, rejected), got K = {rewards.shape[-1]}; "
                         "use ranking_rm for larger groups")
    return -F.logsigmoid(rewards[:, 0] - rewards[:, 1])


@register_loss("ranking_rm")
def ranking_rm_loss(
    rewards: torch.Tensor,  # (B, K) rewards of K responses per prompt, ordered best first
    valid: torch.Tensor | None = None,  # (B, K) 1 where a response exists (groups may have fewer than K)
) -> torch.Tensor:
    """InstructGPT's K-way ranking: every pair (i better than j) of a prompt's K ranked responses in one batch,
    -1/C(K,2) Σ_{i<j} log σ(r_i - r_j); shape (B,). All C(K,2) comparisons of a prompt share one forward pass,
    which is why the paper batches them per prompt instead of as separate pairs (it overfits otherwise)."""
    b, k = rewards.shape
    valid = torch.ones_like(rewards) if valid is None else valid.to(rewards.dtype)
    diff = rewards[:, :, None] - rewards[:, None, :]  # (B, K, K): r_i - r_j
    better = torch.triu(torch.ones(k, k, dtype=rewards.dtype, device=rewards.device), diagonal=1)  # i < j
    pairs = better[None] * valid[:, :, None] * valid[:, None, :]  # (B, K, K)
    return -(F.logsigmoid(diff) * pairs).sum((1, 2)) / pairs.sum((1, 2)).clamp(min=1.0)


@register_loss("dpo")
def dpo_loss(
    policy_chosen: torch.Tensor,  # (B,) log π(y_w | x), summed over response tokens
    policy_rejected: torch.Tensor,  # (B,) log π(y_l | x)
    reference_chosen: torch.Tensor,  # (B,) log π_ref(y_w | x), cached once before training
    reference_rejected: torch.Tensor,  # (B,) log π_ref(y_l | x)
    beta: float = 0.1,
    chosen_tokens: torch.Tensor | None = None,  # (B,) response tokens of y_w; needed when nll_coef > 0
    nll_coef: float = 0.0,
) -> torch.Tensor:
    """DPO (Rafailov et al. 2023): -log σ(β[(log π(y_w) - log π_ref(y_w)) - (log π(y_l) - log π_ref(y_l))]),
    shape (B,). With nll_coef α > 0, plus α · (-log π(y_w)) / |y_w|: Iterative RPO (Pang et al. 2024, eq. 3)
    found DPO alone lowers the chosen answers' likelihood too and loses accuracy on GSM8K; the NLL term keeps it."""
    margin = (policy_chosen - reference_chosen) - (policy_rejected - reference_rejected)
    loss = -F.logsigmoid(beta * margin)
    if nll_coef:
        if chosen_tokens is None:
            raise ValueError("dpo_loss: nll_coef > 0 needs chosen_tokens, the length of each chosen response")
        loss = loss - nll_coef * policy_chosen / chosen_tokens.clamp(min=1.0)
    return loss


@register_loss("rrtf")
def rrtf_loss(
    logp: torch.Tensor,  # (B, K) per-token mean log-prob of each of K responses to a prompt
    scores: torch.Tensor,  # (B, K) their scores (unit-test results), higher is better
    best_nll: torch.Tensor,  # (B,) summed NLL of the best-scored response, the fine-tuning term
    valid: torch.Tensor | None = None,  # (B, K) 1 where a response exists
) -> torch.Tensor:
    """PanGu-Coder2's RRTF: L_rank = Σ_{s_i < s_j} max(0, p_i - p_j) plus L_ft = -log P(best response);
    shape (B,). The ranking term pushes every worse-scored response below every better-scored one."""
    valid = torch.ones_like(logp) if valid is None else valid.to(logp.dtype)
    worse = (scores[:, :, None] < scores[:, None, :]).to(logp.dtype)  # (B, K, K): s_i < s_j
    pairs = worse * valid[:, :, None] * valid[:, None, :]
    rank = (torch.relu(logp[:, :, None] - logp[:, None, :]) * pairs).sum((1, 2))  # (B,)
    return rank + best_nll


@register_loss("prm_bce")
def prm_bce_loss(
    logits: torch.Tensor,  # (B, S) the process reward model's logit at each step end
    targets: torch.Tensor,  # (B, S) step labels in [0, 1]: hard (0/1) or soft (share of completions correct)
    valid: torch.Tensor,  # (B, S) 1 where the row has that step
) -> torch.Tensor:
    """Math-Shepherd's PRM objective: binary cross-entropy at every step end, summed per row, shape (B,) (the
    loop divides by the global number of steps)."""
    bce = F.binary_cross_entropy_with_logits(logits, targets.to(logits.dtype), reduction="none")  # (B, S)
    return (bce * valid).sum(-1)
