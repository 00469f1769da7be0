"""A model folder as an engine sees it: the files that shape the engine (architecture, tokenizer, generation
defaults), and the weights, which can be swapped into an open engine when those files are the same (issue 16,
item 7: an engine start per stage was 13% of the quickstart)."""
from __future__ import annotations

import hashlib
from pathlib import Path

# what vLLM and transformers read besides the weights; a file missing from this list could only make two folders
# look different (a reopen), never the same, as long as the architecture and tokenizer files are in it
ENGINE_FILES = ("config.json", "generation_config.json", "tokenizer*", "special_tokens_map.json",
                "added_tokens.json", "vocab*", "merges.txt", "*.jinja", "chat_template.json", "*.model",
                "preprocessor_config.json")
# every file a model's weights may be saved in (transformers' formats)
WEIGHT_FILES = ("*.safetensors", "*.bin", "*.safetensors.index.json", "*.bin.index.json", "*.pt", "*.pth")


def engine_files_digest(folder: Path) -> str:
    """sha256 over the names and bytes of the folder's engine files (sorted, so listing order does not matter)."""
    digest = hashlib.sha256()
    for path in sorted({p for pattern in ENGINE_FILES for p in folder.glob(pattern) if p.is_file()}):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def read_weights(folder: Path) -> dict | None:
    """Every tensor of the folder's safetensors files by name, or None when some weights are in another format
    (the engine is then reopened from the folder instead)."""
    from safetensors.torch import load_file

    stored = {p for pattern in WEIGHT_FILES for p in folder.glob(pattern)}
    files = sorted(p for p in stored if p.name.endswith(".safetensors"))
    if not files or any(not p.name.endswith((".safetensors", ".safetensors.index.json")) for p in stored):
        return None
    weights: dict = {}
    for path in files:
        weights |= load_file(path)
    return _untie(folder, weights)


# input-embedding names of the causal LMs whose tied output embedding (lm_head) is not saved
_INPUT_EMBEDDINGS = ("model.embed_tokens.weight", "transformer.wte.weight")


def _untie(folder: Path, weights: dict) -> dict | None:
    """A folder saved with tied embeddings has no `lm_head.weight`; vLLM's in-place reload keeps the *old* head
    then (it warns and goes on), so the head is sent as the embedding it is tied to; unknown naming: None."""
    import json

    config = json.loads((folder / "config.json").read_text())
    if not config.get("tie_word_embeddings", False) or "lm_head.weight" in weights:
        return weights
    embedding = next((name for name in _INPUT_EMBEDDINGS if name in weights), None)
    return None if embedding is None else weights | {"lm_head.weight": weights[embedding]}
