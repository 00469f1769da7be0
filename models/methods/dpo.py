"""DPO (Rafailov et al. 2023): (chosen, rejected) pairs, with the reference model's log-probs computed once
beforehand (tasks/training/train_preference.py: reference_logprobs), so training holds one model. Loss `dpo`."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from pydantic import Field
from transformers import PreTrainedTokenizerBase

from models.losses import sequence_logprobs
from models.methods import register_method
from models.methods.base import MethodData, MethodEntry, Rows, TrainConfig
from models.methods.common import NamedLoss, epoch_order
from models.methods.model_kinds import CAUSAL_LM
from models.sft_data import TokenizedExample, collate, prompt_format, tokenize_pair


class DPOTrainConfig(TrainConfig):
    method: ClassVar[str] = "dpo"
    beta: float = Field(default=0.1, gt=0, description="DPO temperature")
    nll_coef: float = Field(default=0.0, ge=0, description="weight of the chosen responses' per-token NLL added "
                            "to the DPO loss (Iterative RPO, Pang et al. 2024: α = 1); 0 is plain DPO")


@dataclass
class DPOMethod(NamedLoss):
    """pairs[p] = (chosen, rejected) TokenizedExamples; reference[p] = (ref logp chosen, ref logp rejected)."""

    pairs: list[tuple[TokenizedExample, TokenizedExample]]
    reference: list[tuple[float, float]]
    pad_id: int
    beta: float = 0.1
    nll_coef: float = 0.0
    # a registered loss taking (policy chosen, policy rejected, ref chosen, ref rejected, β, chosen_tokens=,
    # nll_coef=): models/losses.py dpo_loss
    loss_name: str = "dpo"

    def epoch_units(self, epoch: int, seed: int) -> list:
        return epoch_order(len(self.pairs), seed, epoch)

    def collate(self, units: list) -> dict[str, torch.Tensor]:
        batch = collate([e for p in units for e in self.pairs[p]], self.pad_id)  # (2B, T) rows: c0, r0, c1, r1, ...
        batch["reference"] = torch.tensor([self.reference[p] for p in units], dtype=torch.float32)  # (B, 2)
        return batch

    def count(self, units: list) -> float:
        return float(len(units))

    def loss(self, model, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict]:
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits  # (2B, T, V)
        logp = sequence_logprobs(logits, batch["input_ids"], batch["loss_mask"]).view(-1, 2)  # (B, 2)
        ref = batch["reference"]  # (B, 2)
        chosen_tokens = batch["loss_mask"][:, 1:].sum(-1).view(-1, 2)[:, 0].float()  # (B,)
        losses = self.loss_fn(logp[:, 0], logp[:, 1], ref[:, 0], ref[:, 1], self.beta,
                              chosen_tokens=chosen_tokens, nll_coef=self.nll_coef)  # (B,)
        won = ((logp[:, 0] - ref[:, 0]) > (logp[:, 1] - ref[:, 1])).float()  # (B,)
        return losses.sum(), {"accuracy": won.sum().detach()}

    def unit_examples(self, unit) -> list[int]:
        return [unit]

    def unit_tokens(self, unit) -> int:
        return sum(len(e.input_ids) for e in self.pairs[unit])


def dpo_tables(cfg: DPOTrainConfig) -> dict[str, str]:
    return {"preferences": "pairs_train", "reference": "reference"}


def build_dpo_data(rows: Rows, tokenizer: PreTrainedTokenizerBase, cfg: DPOTrainConfig) -> MethodData:
    """Pairs (`prompt`, `chosen`, `rejected`) and their reference log-probs (`chosen_logp`, `rejected_logp`),
    row for row in the same order → ((chosen, rejected) examples, [(ref chosen, ref rejected)])."""
    max_len = cfg.optim.max_len
    pairs = [(tokenize_pair(tokenizer, r["prompt"], r["chosen"], max_len, **prompt_format(r)),
              tokenize_pair(tokenizer, r["prompt"], r["rejected"], max_len, **prompt_format(r)))
             for r in rows["preferences"]]
    reference = [(x["chosen_logp"], x["rejected_logp"]) for x in rows["reference"]]
    return MethodData((pairs, reference), len(pairs), sum(len(a.input_ids) + len(b.input_ids) for a, b in pairs))


def make_dpo(data: tuple[list, list[tuple[float, float]]], cfg: DPOTrainConfig, pad_id: int) -> DPOMethod:
    pairs, reference = data
    return DPOMethod(pairs, reference, pad_id, cfg.beta, cfg.nll_coef, cfg.optim.loss)


DPO = register_method(MethodEntry(name="dpo", config=DPOTrainConfig, losses=("dpo",), tables=dpo_tables,
                                  build_data=build_dpo_data, model=CAUSAL_LM, make=make_dpo))
