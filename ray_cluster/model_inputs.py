"""What a model accepts: checking a folder is a causal LM, turning prompt text into token ids, context limits.

Both backends go through these functions, so the same prompt becomes the same tokens whichever engine runs it,
and a bad model or an over-long prompt is caught the same way before any engine is asked to generate.
"""
from __future__ import annotations

import json
from typing import Any


class ModelFolderError(ValueError):
    """The model folder is missing, unreadable or not a causal language model."""


def check_causal_lm(config: dict[str, Any] | None, where: str) -> None:
    """Raise ModelFolderError unless `config` (a parsed config.json) describes a causal LM transformers knows."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    if config is None:
        raise ModelFolderError(f"{where}: no config.json (expected a Hugging Face model folder)")
    model_type = config.get("model_type")
    if model_type not in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES:
        raise ModelFolderError(f"{where}/config.json: model_type {model_type!r} is not a causal LM "
                               "(expected e.g. 'llama', 'qwen2', 'gpt2')")
    archs = config.get("architectures") or []
    if archs and not any(a.endswith("ForCausalLM") or a.endswith("LMHeadModel") for a in archs):
        raise ModelFolderError(f"{where}/config.json: architectures {archs} has no *ForCausalLM head")


def read_model_config(fs, folder: str) -> dict[str, Any] | None:
    """config.json of a model folder on any fsspec filesystem, or None when there is none."""
    try:
        with fs.open(f"{folder.rstrip('/')}/config.json", "r") as fh:
            return json.load(fh)
    except FileNotFoundError:
        return None
    except json.JSONDecodeError as exc:
        raise ModelFolderError(f"{folder}/config.json: not valid JSON ({exc})") from exc


def encode_for_model(tokenizer, text: str, use_chat_template: bool, continuation: str = "",
                     system: str | None = None) -> list[int]:
    """Token ids of one prompt: the chat template when the model has one (and it is wanted), else BOS + text,
    exactly as the training stages encode prompts (models/sft_data.py); then the tokens of `continuation`
    (completion text already generated), so generation picks up where it stopped."""
    from models.sft_data import encode_prompt

    ids = encode_prompt(tokenizer, text, use_chat_template, system)
    return ids + (tokenizer.encode(continuation, add_special_tokens=False) if continuation else [])


def context_error(prompt_tokens: int, context: int) -> str | None:
    """Why a prompt cannot be generated from (recorded on its rows), or None when at least one token fits."""
    if prompt_tokens >= context:
        return f"prompt has {prompt_tokens} tokens; the model's context is {context} (no room to generate)"
    return None
