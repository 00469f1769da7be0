"""Process reward model (Math-Shepherd, Wang et al. 2024; Lightman et al. 2023): a value head read at the end of
every reasoning step, trained with binary cross-entropy (loss `prm_bce`) on automatic step labels — hard (1 when
any completion from the step's prefix reaches the right answer) or soft (the share that does)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

import torch
from pydantic import Field
from transformers import PreTrainedTokenizerBase

from models.methods import register_method
from models.methods.base import EmptyTable, MethodData, MethodEntry, Rows, TrainConfig
from models.methods.common import NamedLoss, epoch_order
from models.methods.model_kinds import PROCESS_REWARD_MODEL
from models.process_reward import collate_steps, encode_steps


class PRMTrainConfig(TrainConfig):
    method: ClassVar[str] = "prm"
    labels: Literal["hard", "soft"] = Field(default="hard", description="Math-Shepherd's hard estimation (any "
                                            "completion correct) or soft (fraction correct)")


@dataclass
class PRMMethod(NamedLoss):
    """rows[i] = (ids, step ends, step targets); one unit per solution, the loss averaged over steps."""

    rows: list[tuple[list[int], list[int], list[float]]]
    pad_id: int
    loss_name: str = "prm_bce"  # a registered loss taking (logits (B, S), targets (B, S), valid (B, S)) → (B,)

    def epoch_units(self, epoch: int, seed: int) -> list:
        return epoch_order(len(self.rows), seed, epoch)

    def collate(self, units: list) -> dict[str, torch.Tensor]:
        batch = collate_steps([self.rows[u][:2] for u in units], self.pad_id)
        targets = torch.zeros_like(batch["step_valid"])  # (B, S)
        for i, u in enumerate(units):
            targets[i, : len(self.rows[u][2])] = torch.tensor(self.rows[u][2])
        return batch | {"targets": targets}

    def count(self, units: list) -> float:
        return float(sum(len(self.rows[u][1]) for u in units))

    def loss(self, model, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict]:
        logits = model(batch["input_ids"], batch["attention_mask"], batch["step_index"])  # (B, S)
        valid, targets = batch["step_valid"], batch["targets"]  # (B, S)
        hits = (((logits > 0).float() == (targets >= 0.5).float()).float() * valid).sum()
        return self.loss_fn(logits, targets, valid).sum(), {"step_accuracy": hits.detach()}

    def unit_examples(self, unit) -> list[int]:
        return [unit]

    def unit_tokens(self, unit) -> int:
        return len(self.rows[unit][0])


def build_prm_data(rows: Rows, tokenizer: PreTrainedTokenizerBase, cfg: PRMTrainConfig) -> MethodData:
    """`steps_train` rows (`prompt`, `steps`, `hard`, `soft`) → (ids, step ends, the configured labels); a row
    whose every step falls beyond `optim.max_len` trains nothing and is dropped."""
    data = []
    for row in rows["steps"]:
        ids, ends = encode_steps(tokenizer, row["prompt"], list(row["steps"]), cfg.optim.max_len)
        if ends:
            data.append((ids, ends, [float(v) for v in row[cfg.labels][: len(ends)]]))
    if not data:
        raise EmptyTable("steps", "steps_train", "no solution with a labelled step fits optim.max_len")
    return MethodData(data, len(data), sum(len(ids) for ids, _, _ in data))


def make_prm(rows: list, cfg: PRMTrainConfig, pad_id: int) -> PRMMethod:
    return PRMMethod(rows, pad_id, cfg.optim.loss)


PRM_METHOD = register_method(MethodEntry(
    name="prm", config=PRMTrainConfig, losses=("prm_bce",), tables=lambda cfg: {"steps": "steps_train"},
    build_data=build_prm_data, model=PROCESS_REWARD_MODEL, make=make_prm))
