"""Turning (prompt, completion) pairs into padded training batches with a completion-only loss mask."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers import PreTrainedTokenizerBase


@dataclass(frozen=True)
class TokenizedExample:
    input_ids: list[int]
    loss_mask: list[int]  # 1 on completion tokens (including EOS), 0 on BOS + prompt


def prompt_format(row: dict) -> dict:
    """How a row's prompt is shown to the model, as the dataset import rendered it (tasks/data/prompting.py):
    `encode_prompt`'s keyword arguments. Rows without the columns (the embedded tasks) use the defaults."""
    chat = row.get("chat_template")
    return {"chat_template": True if chat is None else bool(chat), "system": row.get("system")}


def encode_prompt(tokenizer: PreTrainedTokenizerBase, prompt: str, chat_template: bool = True,
                  system: str | None = None) -> list[int]:
    """The prompt's token ids, the same in training and in every generation backend: the model's chat template
    (system turn, user turn, generation prompt) when it has one and `chat_template` is on, else BOS + the
    system prompt's paragraph + prompt."""
    if chat_template and getattr(tokenizer, "chat_template", None):
        turns = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": prompt}]
        ids = tokenizer.apply_chat_template(turns, add_generation_prompt=True, tokenize=True)
        # transformers 5 returns a BatchEncoding-like mapping for a single conversation
        return list(ids["input_ids"] if hasattr(ids, "keys") else ids)
    bos = [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []
    text = f"{system}\n\n{prompt}" if system else prompt
    return bos + tokenizer.encode(text, add_special_tokens=False)


def tokenize_pair(tokenizer: PreTrainedTokenizerBase, prompt: str, completion: str, max_len: int,
                  chat_template: bool = True, system: str | None = None) -> TokenizedExample:
    """prompt (as `encode_prompt`) + completion + EOS; the model learns to end with EOS, which is where generation
    stops, after the same prompt tokens it will be sampled from."""
    prompt_ids = encode_prompt(tokenizer, prompt, chat_template, system)
    completion_ids = tokenizer.encode(completion, add_special_tokens=False) + [tokenizer.eos_token_id]
    ids = (prompt_ids + completion_ids)[:max_len]
    mask = ([0] * len(prompt_ids) + [1] * len(completion_ids))[:max_len]
    return TokenizedExample(input_ids=ids, loss_mask=mask)


def collate(examples: list[TokenizedExample], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-padded tensors: input_ids (B, T), attention_mask (B, T), loss_mask (B, T)."""
    width = max(len(e.input_ids) for e in examples)
    ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    attention = torch.zeros((len(examples), width), dtype=torch.long)
    loss_mask = torch.zeros((len(examples), width), dtype=torch.long)
    for row, example in enumerate(examples):
        n = len(example.input_ids)
        ids[row, :n] = torch.tensor(example.input_ids)
        attention[row, :n] = 1
        loss_mask[row, :n] = torch.tensor(example.loss_mask)
    return {"input_ids": ids, "attention_mask": attention, "loss_mask": loss_mask}
