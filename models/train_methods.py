"""Training methods for models/train_loop.py: what a unit is, how units become tensors, and the loss.

- `SFTMethod`: next-token loss on response tokens; units are examples (padded or length-bucketed batches) or
  packed rows (models/packing.py).
- `RewardModelMethod`: groups of responses to one prompt ordered best first; K = 2 with `pairwise_rm`, any K
  with InstructGPT's `ranking_rm`. The model is an `EOSReward` (reward read at the EOS token).
- `DPOMethod`: (chosen, rejected) pairs with reference log-probs computed once beforehand.
- `RRTFMethod`: groups of responses with scores (unit tests), PanGu-Coder2's ranking loss + SFT on the best.
"""
from __future__ import annotations

import random
from dataclasses import dataclass

import torch

from models.losses import dpo_loss, pairwise_rm_loss, ranking_rm_loss, rrtf_loss, sequence_logprobs, token_logprobs
from models.packing import PackedRow, collate_packed, pack_examples
from models.sft_data import TokenizedExample, collate


def epoch_order(n: int, seed: int, epoch: int) -> list[int]:
    """A fresh permutation of range(n) per epoch, a pure function of (seed, epoch)."""
    order = list(range(n))
    random.Random(seed * 1_000_003 + epoch).shuffle(order)
    return order


def _response_tokens(example: TokenizedExample) -> int:
    return sum(example.loss_mask[1:])


@dataclass
class SFTMethod:
    examples: list[TokenizedExample]
    pad_id: int
    batching: str = "bucketed"  # padded | bucketed | packed
    batch_size: int = 32  # examples per global batch (padded/bucketed); rows per batch when packed
    pack_len: int = 512

    def epoch_units(self, epoch: int, seed: int) -> list:
        order = epoch_order(len(self.examples), seed, epoch)
        if self.batching == "packed":
            return pack_examples([self.examples[i] for i in order], order, self.pack_len)
        if self.batching == "padded":
            return order
        # bucketed: sort windows of 16 batches by length, cut into batches, shuffle the batches. On CPU compute
        # is the bottleneck and padding to the longest example of a random batch wastes ~30% of it.
        window, batches = self.batch_size * 16, []
        for start in range(0, len(order), window):
            chunk = sorted(order[start: start + window], key=lambda i: len(self.examples[i].input_ids))
            batches += [chunk[s: s + self.batch_size] for s in range(0, len(chunk), self.batch_size)]
        random.Random(seed * 7_919 + epoch).shuffle(batches)
        return [i for batch in batches for i in batch]

    def collate(self, units: list) -> dict[str, torch.Tensor]:
        if self.batching == "packed":
            return collate_packed(units, self.pad_id)
        return collate([self.examples[i] for i in units], self.pad_id)

    def count(self, units: list) -> float:
        if self.batching == "packed":
            return float(sum(sum(r.loss_mask[1:]) for r in units))
        return float(sum(_response_tokens(self.examples[i]) for i in units))

    def loss(self, model, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict]:
        inputs = {k: batch[k] for k in ("input_ids", "attention_mask", "position_ids") if k in batch}
        logits = model(**inputs).logits  # (B, T, V)
        mask = batch["loss_mask"][:, 1:].float()  # (B, T-1)
        return -(token_logprobs(logits, batch["input_ids"]) * mask).sum(), {}

    def unit_examples(self, unit) -> list[int]:
        return unit.example_ids if isinstance(unit, PackedRow) else [unit]

    def unit_tokens(self, unit) -> int:
        return len(unit.input_ids) if isinstance(unit, PackedRow) else len(self.examples[unit].input_ids)


def _pad_sequences(seqs: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)  # (N, T)
    attention = torch.zeros((len(seqs), width), dtype=torch.long)  # (N, T)
    for i, s in enumerate(seqs):
        ids[i, : len(s)], attention[i, : len(s)] = torch.tensor(s), 1
    return ids, attention


@dataclass
class RewardModelMethod:
    """groups[g] = token-id sequences (prompt + response + EOS), best first; K = len of the longest group."""

    groups: list[list[list[int]]]
    pad_id: int
    loss_name: str = "ranking_rm"

    def epoch_units(self, epoch: int, seed: int) -> list:
        return epoch_order(len(self.groups), seed, epoch)

    def collate(self, units: list) -> dict[str, torch.Tensor]:
        k = max(len(self.groups[g]) for g in units)
        seqs, valid = [], torch.zeros(len(units), k)
        for row, g in enumerate(units):
            group = self.groups[g]
            seqs += group + [group[-1]] * (k - len(group))  # filler rows, masked out by `valid`
            valid[row, : len(group)] = 1
        ids, attention = _pad_sequences(seqs, self.pad_id)
        eos = attention.sum(-1) - 1  # (N,)
        return {"input_ids": ids, "attention_mask": attention, "eos_index": eos, "valid": valid}

    def count(self, units: list) -> float:
        return float(len(units))

    def loss(self, model, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict]:
        valid = batch["valid"]  # (B, K)
        rewards = model(batch["input_ids"], batch["attention_mask"], batch["eos_index"]).view(valid.shape)  # (B, K)
        if self.loss_name == "pairwise_rm":
            per_group = pairwise_rm_loss(rewards[:, 0], rewards[:, 1])
        else:
            per_group = ranking_rm_loss(rewards, valid)
        best_wins = ((rewards[:, :1] > rewards[:, 1:]) | (valid[:, 1:] == 0)).all(-1).float()
        return per_group.sum(), {"accuracy": best_wins.sum().detach()}

    def unit_examples(self, unit) -> list[int]:
        return [unit]

    def unit_tokens(self, unit) -> int:
        return sum(len(s) for s in self.groups[unit])


@dataclass
class DPOMethod:
    """pairs[p] = (chosen, rejected) TokenizedExamples; reference[p] = (ref logp chosen, ref logp rejected)."""

    pairs: list[tuple[TokenizedExample, TokenizedExample]]
    reference: list[tuple[float, float]]
    pad_id: int
    beta: float = 0.1

    def epoch_units(self, epoch: int, seed: int) -> list:
        return epoch_order(len(self.pairs), seed, epoch)

    def collate(self, units: list) -> dict[str, torch.Tensor]:
        batch = collate([e for p in units for e in self.pairs[p]], self.pad_id)  # rows: c0, r0, c1, r1, ...
        batch["reference"] = torch.tensor([self.reference[p] for p in units], dtype=torch.float32)  # (B, 2)
        return batch

    def count(self, units: list) -> float:
        return float(len(units))

    def loss(self, model, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict]:
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        logp = sequence_logprobs(logits, batch["input_ids"], batch["loss_mask"]).view(-1, 2)  # (B, 2)
        ref = batch["reference"]
        losses = dpo_loss(logp[:, 0], logp[:, 1], ref[:, 0], ref[:, 1], self.beta)
        won = ((logp[:, 0] - ref[:, 0]) > (logp[:, 1] - ref[:, 1])).float()
        return losses.sum(), {"accuracy": won.sum().detach()}

    def unit_examples(self, unit) -> list[int]:
        return [unit]

    def unit_tokens(self, unit) -> int:
        return sum(len(e.input_ids) for e in self.pairs[unit])


@dataclass
class RRTFMethod:
    """groups[g] = [(TokenizedExample, score), ...] for one prompt; the highest score is the SFT target."""

    groups: list[list[tuple[TokenizedExample, float]]]
    pad_id: int

    def epoch_units(self, epoch: int, seed: int) -> list:
        return epoch_order(len(self.groups), seed, epoch)

    def collate(self, units: list) -> dict[str, torch.Tensor]:
        k = max(len(self.groups[g]) for g in units)
        examples, scores, valid = [], torch.zeros(len(units), k), torch.zeros(len(units), k)
        for row, g in enumerate(units):
            group = self.groups[g]
            examples += [e for e, _ in group] + [group[0][0]] * (k - len(group))
            scores[row, : len(group)] = torch.tensor([s for _, s in group])
            valid[row, : len(group)] = 1
        batch = collate(examples, self.pad_id)
        return batch | {"scores": scores, "valid": valid}

    def count(self, units: list) -> float:
        return float(len(units))

    def loss(self, model, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict]:
        valid = batch["valid"]  # (B, K)
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        mean_logp = sequence_logprobs(logits, batch["input_ids"], batch["loss_mask"], average=True).view(valid.shape)
        summed = sequence_logprobs(logits, batch["input_ids"], batch["loss_mask"]).view(valid.shape)  # (B, K)
        scores = batch["scores"].masked_fill(valid == 0, float("-inf"))
        best = scores.argmax(-1)  # (B,) the first of the best-scored responses
        best_nll = -summed.gather(1, best[:, None]).squeeze(1)  # (B,)
        return rrtf_loss(mean_logp, batch["scores"], best_nll, valid).sum(), {}

    def unit_examples(self, unit) -> list[int]:
        return [unit]

    def unit_tokens(self, unit) -> int:
        return sum(len(e.input_ids) for e, _ in self.groups[unit])
