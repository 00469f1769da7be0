"""RRTF (PanGu-Coder2): groups of responses to one prompt with scores (unit-test results); loss `rrtf`, a
ranking term that keeps every worse-scored response below every better-scored one, plus SFT on the best."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from transformers import PreTrainedTokenizerBase

from models.losses import sequence_logprobs
from models.methods import register_method
from models.methods.base import EmptyTable, MethodData, MethodEntry, Rows, TrainConfig
from models.methods.common import NamedLoss, epoch_order
from models.methods.model_kinds import CAUSAL_LM
from models.sft_data import TokenizedExample, collate, prompt_format, tokenize_pair


class RRTFTrainConfig(TrainConfig):
    method: ClassVar[str] = "rrtf"


@dataclass
class RRTFMethod(NamedLoss):
    """groups[g] = [(TokenizedExample, score), ...] for one prompt; the highest score is the SFT target."""

    groups: list[list[tuple[TokenizedExample, float]]]
    pad_id: int
    loss_name: str = "rrtf"  # a registered loss taking (mean logp (B, K), scores (B, K), best NLL (B,), valid)

    def epoch_units(self, epoch: int, seed: int) -> list:
        return epoch_order(len(self.groups), seed, epoch)

    def collate(self, units: list) -> dict[str, torch.Tensor]:
        k = max(len(self.groups[g]) for g in units)
        examples, scores, valid = [], torch.zeros(len(units), k), torch.zeros(len(units), k)  # (B, K) each
        for row, g in enumerate(units):
            group = self.groups[g]
            examples += [e for e, _ in group] + [group[0][0]] * (k - len(group))  # fillers, masked by `valid`
            scores[row, : len(group)] = torch.tensor([s for _, s in group])
            valid[row, : len(group)] = 1
        batch = collate(examples, self.pad_id)  # (B*K, T)
        return batch | {"scores": scores, "valid": valid}

    def count(self, units: list) -> float:
        return float(len(units))

    def loss(self, model, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict]:
        valid = batch["valid"]  # (B, K)
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits  # (B*K, T, V)
        mean_logp = sequence_logprobs(logits, batch["input_ids"], batch["loss_mask"], average=True).view(valid.shape)
        summed = sequence_logprobs(logits, batch["input_ids"], batch["loss_mask"]).view(valid.shape)  # (B, K)
        scores = batch["scores"].masked_fill(valid == 0, float("-inf"))
        best = scores.argmax(-1)  # (B,) the first of the best-scored responses
        best_nll = -summed.gather(1, best[:, None]).squeeze(1)  # (B,)
        return self.loss_fn(mean_logp, batch["scores"], best_nll, valid).sum(), {}

    def unit_examples(self, unit) -> list[int]:
        return [unit]

    def unit_tokens(self, unit) -> int:
        return sum(len(e.input_ids) for e, _ in self.groups[unit])


def rrtf_tables(cfg: RRTFTrainConfig) -> dict[str, str]:
    return {"preferences": "groups_train"}


def build_rrtf_data(rows: Rows, tokenizer: PreTrainedTokenizerBase, cfg: RRTFTrainConfig) -> MethodData:
    """Groups (`prompt`, `texts`, `scores`) → [(BOS + prompt + response + EOS, score), ...] per prompt."""
    prefs = rows["preferences"]
    if not prefs:
        raise EmptyTable("preferences", "groups_train", "no prompt had responses with different scores")
    max_len = cfg.optim.max_len
    groups = [[(tokenize_pair(tokenizer, r["prompt"], t, max_len, **prompt_format(r)), s)
               for t, s in zip(r["texts"], r["scores"])] for r in prefs]
    return MethodData(groups, len(groups), sum(len(e.input_ids) for g in groups for e, _ in g))


def make_rrtf(groups: list, cfg: RRTFTrainConfig, pad_id: int) -> RRTFMethod:
    return RRTFMethod(groups, pad_id, cfg.optim.loss)


RRTF = register_method(MethodEntry(name="rrtf", config=RRTFTrainConfig, losses=("rrtf",), tables=rrtf_tables,
                                   build_data=build_rrtf_data, model=CAUSAL_LM, make=make_rrtf))
