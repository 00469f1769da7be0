"""SFT: next-token loss on response tokens (loss `sft`). Units are examples (padded or length-bucketed
batches) or packed rows (models/packing.py); the loop normalises by the global batch's response tokens."""
from __future__ import annotations

import random
from dataclasses import dataclass
from typing import ClassVar, Literal

import torch
from pydantic import Field
from transformers import PreTrainedTokenizerBase

from models.methods import register_method
from models.methods.base import MethodData, MethodEntry, Rows, TrainConfig
from models.methods.common import NamedLoss, epoch_order
from models.methods.model_kinds import CAUSAL_LM
from models.packing import PackedRow, collate_packed, pack_examples
from models.sft_data import TokenizedExample, collate, prompt_format, tokenize_pair


class SFTConfig(TrainConfig):
    method: ClassVar[str] = "sft"
    batching: Literal["padded", "bucketed", "packed"] = Field(default="bucketed", description="how units batch")
    pack_len: int | None = Field(default=None, ge=16, description="tokens per packed row (default optim.max_len)")


def _response_tokens(example: TokenizedExample) -> int:
    return sum(example.loss_mask[1:])


@dataclass
class SFTMethod(NamedLoss):
    examples: list[TokenizedExample]
    pad_id: int
    batching: str = "bucketed"  # padded | bucketed | packed
    batch_size: int = 32  # examples per global batch (padded/bucketed); rows per batch when packed
    pack_len: int = 512
    loss_name: str = "sft"  # a registered loss taking (logits, input_ids, loss_mask), returning a sum

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
        # packed rows carry position_ids (positions restart per example); padded batches do not
        inputs = {k: batch[k] for k in ("input_ids", "attention_mask", "position_ids") if k in batch}
        logits = model(**inputs).logits  # (B, T, V)
        return self.loss_fn(logits, batch["input_ids"], batch["loss_mask"]), {}

    def unit_examples(self, unit) -> list[int]:
        return unit.example_ids if isinstance(unit, PackedRow) else [unit]

    def unit_tokens(self, unit) -> int:
        return len(unit.input_ids) if isinstance(unit, PackedRow) else len(self.examples[unit].input_ids)


def build_sft_data(rows: Rows, tokenizer: PreTrainedTokenizerBase, cfg: SFTConfig) -> MethodData:
    """`rows["examples"]`: (prompt, completion) rows → BOS + prompt + completion + EOS, loss on the completion."""
    examples = [tokenize_pair(tokenizer, r["prompt"], r["completion"], cfg.optim.max_len, **prompt_format(r))
                for r in rows["examples"]]
    return MethodData(examples, len(examples), sum(len(e.input_ids) for e in examples))


def make_sft(examples: list[TokenizedExample], cfg: SFTConfig, pad_id: int) -> SFTMethod:
    return SFTMethod(examples, pad_id, cfg.batching, cfg.optim.batch_size, cfg.pack_len or cfg.optim.max_len,
                     cfg.optim.loss)


SFT = register_method(MethodEntry(name="sft", config=SFTConfig, losses=("sft",), tables=None,
                                  build_data=build_sft_data, model=CAUSAL_LM, make=make_sft))
