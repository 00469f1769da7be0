"""Which models a kept engine can take in place (same engine files), and the weights it is sent."""
from __future__ import annotations

import json

import torch

from generation_assets import TINY, build_model_folder
from ray_cluster.weight_files import engine_files_digest, read_weights


def test_models_differing_only_in_weights_and_training_records_share_an_engine(tmp_path):
    a, b = build_model_folder(tmp_path / "a", seed=0), build_model_folder(tmp_path / "b", seed=1)
    (b / "winnow_train.json").write_text('{"steps": 3}')  # what the trainer writes beside the model
    assert engine_files_digest(a) == engine_files_digest(b)

    wider = build_model_folder(tmp_path / "c", seed=0, size=TINY.model_copy(update={"intermediate_size": 192}))
    assert engine_files_digest(wider) != engine_files_digest(a)
    config = json.loads((b / "tokenizer_config.json").read_text()) | {"eos_token": "<pad>"}
    (b / "tokenizer_config.json").write_text(json.dumps(config))
    assert engine_files_digest(b) != engine_files_digest(a)


def test_tied_head_is_sent_as_its_embedding_and_other_formats_reopen(tmp_path):
    folder = build_model_folder(tmp_path / "a")
    assert json.loads((folder / "config.json").read_text())["tie_word_embeddings"]
    weights = read_weights(folder)
    assert torch.equal(weights["lm_head.weight"], weights["model.embed_tokens.weight"])

    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps(config | {"tie_word_embeddings": False}))
    assert "lm_head.weight" not in read_weights(folder)  # untied: sent as saved

    torch.save({}, folder / "pytorch_model.bin")  # weights vLLM would read from another file: reopen instead
    assert read_weights(folder) is None
