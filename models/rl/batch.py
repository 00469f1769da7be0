"""Rollouts as tensors, and the trainer's log-probabilities of their response tokens.

Each sequence is prompt + response, right-padded: with right padding the position ids are plain 0..L-1, so
no position-id bookkeeping can go wrong, and masks come from lengths, never from token ids (pad may equal EOS).
Response-token quantities are (B, T) with T the longest response: index j of row b is response token j.
"""
from __future__ import annotations

import torch


def pack(prompts: list[list[int]], responses: list[list[int]], pad_id: int) -> dict[str, torch.Tensor]:
    """input_ids/attention_mask (B, L); response_mask (B, T); logprob_index (B, T): where in the (B, L−1)
    next-token log-probs response token j sits (prompt length − 1 + j)."""
    width = max(len(p) + len(r) for p, r in zip(prompts, responses))
    longest = max(1, max(len(r) for r in responses))
    input_ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    attention = torch.zeros(len(prompts), width, dtype=torch.long)
    mask = torch.zeros(len(prompts), longest)
    index = torch.zeros(len(prompts), longest, dtype=torch.long)
    for b, (p, r) in enumerate(zip(prompts, responses)):
        input_ids[b, : len(p) + len(r)] = torch.tensor(p + r)
        attention[b, : len(p) + len(r)] = 1
        mask[b, : len(r)] = 1
        index[b, : len(r)] = torch.arange(len(p) - 1, len(p) - 1 + len(r))
    return {"input_ids": input_ids, "attention_mask": attention, "response_mask": mask, "logprob_index": index}


def response_logprobs(model, batch: dict[str, torch.Tensor], temperature: float, with_entropy: bool = False
                      ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """log π(response token) from logits divided by the sampling temperature (the N+ details: the trainer
    must score what the sampler sampled from), (B, T); and the per-token entropy when asked."""
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, :-1]  # (B, L−1, V)
    logits = logits.float() / max(temperature, 1e-6)
    index = batch["logprob_index"]  # (B, T)
    picked = torch.gather(logits, 1, index[..., None].expand(-1, -1, logits.shape[-1]))  # (B, T, V)
    logp_all = torch.log_softmax(picked, dim=-1)
    targets = torch.gather(batch["input_ids"][:, 1:], 1, index)  # (B, T) the response tokens
    logp = logp_all.gather(-1, targets[..., None])[..., 0] * batch["response_mask"]
    entropy = -(logp_all.exp() * logp_all).sum(-1) * batch["response_mask"] if with_entropy else None
    return logp, entropy
