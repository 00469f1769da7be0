"""Reward model (InstructGPT): groups of responses to one prompt, best first, scored by an LM with a scalar
head read at the EOS token (models/reward_model.py). Loss `pairwise_rm` on (chosen, rejected) pairs (K = 2)
or `ranking_rm` on ranked groups of any K."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from transformers import PreTrainedTokenizerBase

from models.methods import register_method
from models.methods.base import EmptyTable, MethodData, MethodEntry, Rows, TrainConfig
from models.methods.common import NamedLoss, epoch_order, pad_sequences
from models.methods.model_kinds import REWARD_MODEL
from models.reward_model import reward_ids


class RewardModelTrainConfig(TrainConfig):
    method: ClassVar[str] = "reward_model"


@dataclass
class RewardModelMethod(NamedLoss):
    """groups[g] = token-id sequences (prompt + response + EOS), best first; K = len of the longest group."""

    groups: list[list[list[int]]]
    pad_id: int
    loss_name: str = "ranking_rm"  # a registered loss taking (rewards (B, K), valid (B, K)) → (B,)

    def epoch_units(self, epoch: int, seed: int) -> list:
        return epoch_order(len(self.groups), seed, epoch)

    def collate(self, units: list) -> dict[str, torch.Tensor]:
        k = max(len(self.groups[g]) for g in units)
        seqs, valid = [], torch.zeros(len(units), k)  # valid: (B, K)
        for row, g in enumerate(units):
            group = self.groups[g]
            seqs += group + [group[-1]] * (k - len(group))  # filler rows, masked out by `valid`
            valid[row, : len(group)] = 1
        ids, attention = pad_sequences(seqs, self.pad_id)  # (B*K, T): group g's responses are rows gK..gK+K-1
        eos = attention.sum(-1) - 1  # (B*K,)
        return {"input_ids": ids, "attention_mask": attention, "eos_index": eos, "valid": valid}

    def count(self, units: list) -> float:
        return float(len(units))

    def loss(self, model, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict]:
        valid = batch["valid"]  # (B, K)
        rewards = model(batch["input_ids"], batch["attention_mask"], batch["eos_index"]).view(valid.shape)  # (B, K)
        per_group = self.loss_fn(rewards, valid)  # (B,)
        best_wins = ((rewards[:, :1] > rewards[:, 1:]) | (valid[:, 1:] == 0)).all(-1).float()  # (B,)
        return per_group.sum(), {"accuracy": best_wins.sum().detach()}

    def unit_examples(self, unit) -> list[int]:
        return [unit]

    def unit_tokens(self, unit) -> int:
        return sum(len(s) for s in self.groups[unit])


def _pair_texts(row: dict) -> list[str]:
    return [row["prompt"] + row["chosen"], row["prompt"] + row["rejected"]]


def _group_texts(row: dict) -> list[str]:
    return [row["prompt"] + t for t in row["texts"]]


# per loss: the table it trains on (tasks/selection/preferences.py writes both) and its rows' texts, best first
_DATA_OF_LOSS = {"pairwise_rm": ("pairs_train", _pair_texts), "ranking_rm": ("groups_train", _group_texts)}


def reward_model_tables(cfg: RewardModelTrainConfig) -> dict[str, str]:
    return {"preferences": _DATA_OF_LOSS[cfg.optim.loss][0]}


def build_reward_model_data(rows: Rows, tokenizer: PreTrainedTokenizerBase, cfg: RewardModelTrainConfig) -> MethodData:
    """Pairs (`prompt`, `chosen`, `rejected`) or groups (`prompt`, `texts` best first) → token-id groups."""
    table, texts_of = _DATA_OF_LOSS[cfg.optim.loss]
    texts = [texts_of(r) for r in rows["preferences"]]
    if not texts:
        raise EmptyTable("preferences", table, "no prompt had both better and worse samples (sample more, or at "
                         "a higher temperature)")
    groups = [[reward_ids(tokenizer, t, cfg.optim.max_len) for t in group] for group in texts]
    return MethodData(groups, len(groups), sum(len(s) for g in groups for s in g))


def make_reward_model(groups: list[list[list[int]]], cfg: RewardModelTrainConfig, pad_id: int) -> RewardModelMethod:
    return RewardModelMethod(groups, pad_id, cfg.optim.loss)


REWARD_MODEL_METHOD = register_method(MethodEntry(
    name="reward_model", config=RewardModelTrainConfig, losses=("pairwise_rm", "ranking_rm"),
    tables=reward_model_tables, build_data=build_reward_model_data, model=REWARD_MODEL, make=make_reward_model))
