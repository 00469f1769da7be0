"""Reward models: a causal-LM backbone with a scalar value head, the reward read at the EOS token
(InstructGPT; "The N+ implementation details of RLHF with PPO", Huang et al. 2024).

The folder format is transformers' `*ForSequenceClassification` with `num_labels=1` (e.g.
LlamaForSequenceClassification: backbone `model`, head `score`), loadable by transformers without conversion.
We read the head at the EOS position ourselves instead of relying on the class's own pooling, which finds the
"last non-pad token" and silently reads the wrong position when pad and EOS share an id.
"""
from __future__ import annotations

from pathlib import Path

import torch
from transformers import (AutoModelForSequenceClassification, AutoTokenizer, LlamaConfig,
                          LlamaForSequenceClassification, PreTrainedModel, PreTrainedTokenizerBase)

from models.tiny_llama import ModelSize


def build_tiny_reward_model(size: ModelSize, tokenizer: PreTrainedTokenizerBase, seed: int) -> PreTrainedModel:
    """A random-init Llama reward model (value head `score`, one output) for tests and the embedded default."""
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=size.hidden_size, intermediate_size=size.intermediate_size,
        num_hidden_layers=size.num_layers, num_attention_heads=size.num_heads, num_key_value_heads=size.num_heads,
        max_position_embeddings=size.max_positions, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, num_labels=1,
    )
    torch.manual_seed(seed)
    return LlamaForSequenceClassification(config)


def reward_model_from_lm(folder: Path, tokenizer: PreTrainedTokenizerBase, seed: int) -> PreTrainedModel:
    """InstructGPT: the reward model starts from the SFT model's folder, with a new scalar head `score`
    (random init, hence the seed) on its backbone."""
    torch.manual_seed(seed)
    model = AutoModelForSequenceClassification.from_pretrained(folder, num_labels=1, dtype=torch.float32)
    model.config.pad_token_id = tokenizer.pad_token_id
    return model


def load_reward_model(folder: Path, device: str = "cpu") -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """A reward-model folder (sequence classifier with one label), with a clear error for anything else."""
    folder = Path(folder)
    if not (folder / "config.json").exists():
        raise FileNotFoundError(f"{folder} is not a model folder: no config.json")
    model = AutoModelForSequenceClassification.from_pretrained(folder, dtype=torch.float32).to(device).eval()
    if model.config.num_labels != 1 or _value_head(model) is None:
        raise ValueError(f"{folder}: expected a reward model (sequence classifier with num_labels=1 and a "
                         f"`score` head), got {type(model).__name__} with num_labels={model.config.num_labels}")
    return model, AutoTokenizer.from_pretrained(folder)


def _value_head(model: PreTrainedModel) -> torch.nn.Module | None:
    return getattr(_unwrap_lora(model), "score", None)


def _unwrap_lora(model: PreTrainedModel) -> PreTrainedModel:
    """The transformers model under a peft (LoRA) wrapper, or the model itself."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


class EOSReward(torch.nn.Module):
    """A reward model whose forward is `reward_forward`, so DDP (which needs the forward to go through it)
    can wrap the reward computation itself."""

    def __init__(self, model: PreTrainedModel):
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, eos_index: torch.Tensor) -> torch.Tensor:
        return reward_forward(self.model, input_ids, attention_mask, eos_index)


def reward_ids(tokenizer: PreTrainedTokenizerBase, text: str, max_len: int) -> list[int]:
    """The text's ids + EOS, at most `max_len` (the EOS is kept when truncating: the reward is read there).
    Training (models/methods/reward_model.py) and scoring encode the same way."""
    return tokenizer(text, add_special_tokens=False)["input_ids"][: max_len - 1] + [tokenizer.eos_token_id]


def encode_for_reward(tokenizer: PreTrainedTokenizerBase, texts: list[str], max_len: int) -> dict[str, torch.Tensor]:
    """Right-padded ids with EOS appended to every text (kept when truncating), and each EOS's position."""
    rows = [reward_ids(tokenizer, text, max_len) for text in texts]
    width = max(len(r) for r in rows)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    input_ids = torch.full((len(rows), width), pad, dtype=torch.long)  # (B, T)
    attention_mask = torch.zeros((len(rows), width), dtype=torch.long)  # (B, T)
    for i, row in enumerate(rows):
        input_ids[i, : len(row)] = torch.tensor(row)
        attention_mask[i, : len(row)] = 1
    eos_index = torch.tensor([len(r) - 1 for r in rows])  # (B,)
    return {"input_ids": input_ids, "attention_mask": attention_mask, "eos_index": eos_index}


def reward_forward(model: PreTrainedModel, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                   eos_index: torch.Tensor) -> torch.Tensor:
    """The value head applied to the hidden state at each row's EOS token, plus the normalisation offset
    (`config.reward_bias`, set so the SFT demonstrations average 0: InstructGPT), with gradients.

    input_ids, attention_mask: (B, T) right-padded; eos_index: (B,). Returns (B,) float rewards.
    """
    hf = _unwrap_lora(model)
    backbone = getattr(hf, hf.base_model_prefix)
    hidden = backbone(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state  # (B, T, H)
    at_eos = hidden[torch.arange(hidden.shape[0], device=hidden.device), eos_index.to(hidden.device)]  # (B, H)
    bias = float(getattr(model.config, "reward_bias", 0.0) or 0.0)
    return _value_head(model)(at_eos).squeeze(-1).float() + bias  # (B,)


@torch.no_grad()
def rewards_at_eos(model: PreTrainedModel, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                   eos_index: torch.Tensor) -> torch.Tensor:
    """`reward_forward` without gradients: scoring."""
    return reward_forward(model, input_ids, attention_mask, eos_index)
