"""What a training method trains: a causal LM, or an LM backbone with a scalar reward head read at EOS.

A kind says how the model is built (from an HF folder, or fresh and tiny from a seed), which transformers Auto
class its folder format is (the stage's LoRA check builds one on the meta device), how the loop calls it,
and which heads train in full next to LoRA adapters.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from transformers import (AutoModelForCausalLM, AutoModelForSequenceClassification, PreTrainedModel,
                          PreTrainedTokenizerBase)

from models.process_reward import StepScores
from models.reward_model import EOSReward, build_tiny_reward_model, reward_model_from_lm
from models.tiny_llama import ModelSize, build_tiny_llama


@dataclass(frozen=True)
class ModelKind:
    name: str
    auto_class: type  # the transformers Auto class that loads its folders
    pretrained: Callable[[Path, PreTrainedTokenizerBase, int], PreTrainedModel]  # (folder, tokenizer, init seed)
    fresh: Callable[[ModelSize, PreTrainedTokenizerBase, int], PreTrainedModel]  # (size, tokenizer, init seed)
    wrap: Callable[[PreTrainedModel], torch.nn.Module]  # what the loop calls (DDP wraps this)
    lora_modules_to_save: tuple[str, ...] = ()  # new heads: trained in full, LoRA has nothing to adapt there


def _causal_lm_from_folder(folder: Path, tokenizer: PreTrainedTokenizerBase, seed: int) -> PreTrainedModel:
    # every weight comes from the folder: nothing random to seed
    return AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)


def _as_is(model: PreTrainedModel) -> torch.nn.Module:
    return model


CAUSAL_LM = ModelKind(name="causal_lm", auto_class=AutoModelForCausalLM, pretrained=_causal_lm_from_folder,
                      fresh=build_tiny_llama, wrap=_as_is)

# the forward goes through EOSReward so DDP sees the reward computation itself (models/reward_model.py)
REWARD_MODEL = ModelKind(name="reward_model", auto_class=AutoModelForSequenceClassification,
                         pretrained=reward_model_from_lm, fresh=build_tiny_reward_model, wrap=EOSReward,
                         lora_modules_to_save=("score",))

# the same folder format and head as a reward model, read at every step end instead of at EOS
PROCESS_REWARD_MODEL = ModelKind(name="process_reward_model", auto_class=AutoModelForSequenceClassification,
                                 pretrained=reward_model_from_lm, fresh=build_tiny_reward_model, wrap=StepScores,
                                 lora_modules_to_save=("score",))
