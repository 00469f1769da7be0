"""A pad token distinct from EOS in every imported model (issue 13, item 1). Many pretrained tokenizers have none,
or reuse EOS (SmolLM2: both `<|im_end|>`); collators and sequence classifiers that find padding by id then mask
or misread the EOS a policy must learn to emit and a reward model reads. Winnow's own batches carry explicit
masks, but the folders it writes are used by other tools too, so the import fixes the tokenizer once."""
from __future__ import annotations

import json
from pathlib import Path

NEW_PAD = "<|pad|>"
# existing tokens that are safe as padding (never generated as content), tried in order before adding one
CANDIDATES = ("unk_token", "<|endoftext|>", "<pad>", "<|pad|>", "[PAD]", "<|finetune_right_pad_id|>")


def ensure_distinct_pad(folder: Path) -> dict:
    """Give the model folder's tokenizer a pad token that is not EOS: an existing safe token if it has one, else a
    new `<|pad|>` with the embedding matrix grown by one row (the model's weights are re-saved). Returns what was
    done, for the import's manifest."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(folder)
    eos = tok.eos_token_id
    if tok.pad_token_id is not None and tok.pad_token_id != eos:
        return {"pad_token": tok.pad_token, "pad_token_id": tok.pad_token_id, "pad": "kept"}
    vocab = tok.get_vocab()
    rows = json.loads((folder / "config.json").read_text()).get("vocab_size", len(tok))  # embedding rows
    existing = [getattr(tok, c) if c.endswith("_token") else c for c in CANDIDATES]
    # a token the tokenizer knows but the embedding matrix lacks would index past it
    chosen = next((t for t in existing if t and t in vocab and vocab[t] != eos and vocab[t] < rows), None)
    if chosen is not None:
        tok.pad_token = chosen
        how = "existing token"
    else:
        tok.add_special_tokens({"pad_token": NEW_PAD})
        _grow_embeddings(folder, max(len(tok), tok.pad_token_id + 1))
        how = "added"
    tok.save_pretrained(folder)
    _set_config_pad(folder, tok.pad_token_id)
    return {"pad_token": tok.pad_token, "pad_token_id": tok.pad_token_id, "pad": how}


def _grow_embeddings(folder: Path, vocab_size: int) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    config = json.loads((folder / "config.json").read_text())
    dtype = config.get("dtype") or config.get("torch_dtype") or "float32"
    # pad_token_id=None: the folder's own may point past the embedding matrix (the row about to be added)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=getattr(torch, dtype), pad_token_id=None)
    if model.get_input_embeddings().weight.shape[0] < vocab_size:
        # the new row is the mean of the others (never attended, but a sane logit if ever scored)
        model.resize_token_embeddings(vocab_size, mean_resizing=True)
        model.save_pretrained(folder, safe_serialization=True)


def _set_config_pad(folder: Path, pad_id: int) -> None:
    path = folder / "config.json"
    config = json.loads(path.read_text())
    config["pad_token_id"] = pad_id
    path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    generation = folder / "generation_config.json"
    if generation.exists():
        settings = json.loads(generation.read_text())
        settings["pad_token_id"] = pad_id
        generation.write_text(json.dumps(settings, indent=2, sort_keys=True) + "\n")
