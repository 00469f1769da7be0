"""Process reward models (Lightman et al. 2023, "Let's Verify Step by Step"; Wang et al. 2024, Math-Shepherd):
the reward model's value head (models/reward_model.py: the same folder format, a sequence classifier with one
label) read at the last token of every reasoning step, one logit per step: "is the solution still on track
after this step".

Steps are encoded one by one and concatenated (prompt ids, then each step's ids), so a step's end position is
known exactly whatever the tokenizer merges across the boundary; training (models/methods/prm.py) and scoring
(ray_cluster/reward_scorer.py) use the same `encode_steps`.
"""
from __future__ import annotations

import math

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from models.registry import Registry
from models.reward_model import _unwrap_lora, _value_head


def encode_steps(tokenizer: PreTrainedTokenizerBase, prompt: str, steps: list[str], max_len: int
                 ) -> tuple[list[int], list[int]]:
    """(ids, ends): prompt + steps as ids, and the position of each step's last token. Steps that do not fit
    in `max_len` are dropped whole (their labels with them), never cut in the middle."""
    ids = tokenizer(prompt, add_special_tokens=False)["input_ids"][: max_len - 1]
    ends: list[int] = []
    for step in steps:
        step_ids = tokenizer(step, add_special_tokens=False)["input_ids"] or [tokenizer.eos_token_id]
        if len(ids) + len(step_ids) > max_len:
            break
        ids = ids + step_ids
        ends.append(len(ids) - 1)
    return ids, ends


def step_logits(model: PreTrainedModel, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                step_index: torch.Tensor) -> torch.Tensor:
    """The value head at each step end, with gradients.

    input_ids, attention_mask: (B, T) right-padded; step_index: (B, S) positions of step ends (padding rows may
    repeat any valid position; the caller masks them). Returns (B, S) logits."""
    hf = _unwrap_lora(model)
    backbone = getattr(hf, hf.base_model_prefix)
    hidden = backbone(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state  # (B, T, H)
    rows = torch.arange(hidden.shape[0], device=hidden.device)[:, None]  # (B, 1)
    at_ends = hidden[rows, step_index.to(hidden.device)]  # (B, S, H)
    return _value_head(model)(at_ends).squeeze(-1).float()  # (B, S)


class StepScores(torch.nn.Module):
    """A process reward model whose forward is `step_logits`, so DDP wraps the step scoring itself."""

    def __init__(self, model: PreTrainedModel):
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, step_index: torch.Tensor
                ) -> torch.Tensor:
        return step_logits(self.model, input_ids, attention_mask, step_index)


def collate_steps(rows: list[tuple[list[int], list[int]]], pad_id: int) -> dict[str, torch.Tensor]:
    """(ids, ends) rows → right-padded input_ids / attention_mask (B, T), step_index / step_valid (B, S)."""
    width = max(len(ids) for ids, _ in rows)
    steps = max(1, max(len(ends) for _, ends in rows))
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)  # (B, T)
    attention_mask = torch.zeros((len(rows), width), dtype=torch.long)  # (B, T)
    step_index = torch.zeros((len(rows), steps), dtype=torch.long)  # (B, S)
    step_valid = torch.zeros((len(rows), steps))  # (B, S)
    for i, (ids, ends) in enumerate(rows):
        input_ids[i, : len(ids)] = torch.tensor(ids)
        attention_mask[i, : len(ids)] = 1
        step_index[i, : len(ends)] = torch.tensor(ends, dtype=torch.long)
        step_valid[i, : len(ends)] = 1
    return {"input_ids": input_ids, "attention_mask": attention_mask, "step_index": step_index,
            "step_valid": step_valid}


@torch.no_grad()
def step_probabilities(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase,
                       items: list[tuple[str, list[str]]], max_len: int, device: str = "cpu") -> list[list[float]]:
    """P(step is good) for every step of each (prompt, steps) item; a step beyond `max_len` gets no score."""
    rows = [encode_steps(tokenizer, prompt, steps, max_len) for prompt, steps in items]
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    batch = collate_steps(rows, pad)
    probs = torch.sigmoid(step_logits(model, batch["input_ids"].to(device), batch["attention_mask"].to(device),
                                      batch["step_index"])).cpu()  # (B, S)
    return [probs[i, : len(ends)].tolist() for i, (_, ends) in enumerate(rows)]


# How a solution's step scores become one reward (Lightman et al. 2023 use the product; Math-Shepherd the
# minimum); pure functions over P(step good), registered by name (labeller option `aggregate`).
STEP_AGGREGATES = Registry("step aggregate")


@STEP_AGGREGATES.register("min")
def aggregate_min(scores: list[float]) -> float:
    """The weakest step: a solution is as good as its worst step (Math-Shepherd)."""
    return min(scores)


@STEP_AGGREGATES.register("product")
def aggregate_product(scores: list[float]) -> float:
    """P(every step good), the steps taken as independent (Lightman et al. 2023)."""
    return math.prod(scores)


@STEP_AGGREGATES.register("last")
def aggregate_last(scores: list[float]) -> float:
    """The last step's score: the PRM's view of the whole solution once it has read all of it."""
    return scores[-1]
