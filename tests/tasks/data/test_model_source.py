"""Model sources: an HF folder given locally or on S3 (a tiny random Llama with GPT-2's real BPE tokenizer from a
package), a hub id that cannot be reached (a fast, clear error), and folders that are not causal LMs."""
from __future__ import annotations

import time
from pathlib import Path

import pytest

from generation_assets import tiny_llama_folder
from tasks.core.stage_cache import StageContext
from tasks.core.store import ArtifactStore, StoreSpec
from tasks.data.model_source import ModelConfig, ModelSourceError, import_model


def _ctx(tmp_path) -> StageContext:
    return StageContext(store=StoreSpec(url=str(tmp_path / "store")), show_progress=False)


def test_a_local_hf_folder_becomes_a_store_artifact_keyed_by_its_content(tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = tiny_llama_folder(tmp_path / "src")
    ctx = _ctx(tmp_path)
    ref = import_model.fn("tiny", ModelConfig(path=str(folder)), ctx)
    local = ArtifactStore(ctx.store).local_path(ref)
    tok = AutoTokenizer.from_pretrained(local)
    assert tok.pad_token_id != tok.eos_token_id and tok("hello world")["input_ids"] == [31373, 995]
    AutoModelForCausalLM.from_pretrained(local)
    assert import_model.fn("tiny", ModelConfig(path=str(folder)), ctx) == ref  # same content: reused
    tiny_llama_folder(tmp_path / "src", seed=1)  # retrained into the same place
    assert import_model.fn("tiny", ModelConfig(path=str(folder)), ctx).key != ref.key


def test_an_hf_folder_on_s3(s3_store_spec, tmp_path):
    import fsspec

    folder = tiny_llama_folder(tmp_path / "src")
    base = s3_store_spec.url.removeprefix("s3://")
    fs = fsspec.filesystem("s3", **s3_store_spec.storage_options)
    fs.put(str(folder) + "/", f"{base}/models/tiny/", recursive=True)
    ctx = _ctx(tmp_path)
    ref = import_model.fn("tiny", ModelConfig(path=f"s3://{base}/models/tiny",
                                              storage_options=s3_store_spec.storage_options), ctx)
    local = ArtifactStore(ctx.store).local_path(ref)
    assert sorted(p.name for p in local.iterdir()) == sorted(p.name for p in folder.iterdir())


def test_an_unreachable_hub_id_fails_fast_saying_what_to_pass(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # an empty cache
    started = time.time()
    with pytest.raises(ModelSourceError, match="not in the local HF cache.*pass model.path"):
        import_model.fn("qwen", ModelConfig(hub="Qwen/Qwen2.5-0.5B-Instruct"), _ctx(tmp_path))
    assert time.time() - started < 30


def test_folders_that_are_not_causal_lms_are_refused(tmp_path):
    from transformers import LlamaConfig, LlamaForSequenceClassification

    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "README.md").write_text("not a model")
    with pytest.raises(ModelSourceError, match="no config.json"):
        import_model.fn("x", ModelConfig(path=str(empty)), _ctx(tmp_path))
    classifier = tmp_path / "cls"
    LlamaForSequenceClassification(LlamaConfig(vocab_size=64, hidden_size=16, intermediate_size=32,
                                               num_hidden_layers=1, num_attention_heads=2)).save_pretrained(classifier)
    with pytest.raises(ModelSourceError, match="ForCausalLM"):
        import_model.fn("y", ModelConfig(path=str(classifier)), _ctx(tmp_path))
    with pytest.raises(ValueError, match="exactly one of path, hub, gguf"):
        ModelConfig(path="a", hub="b")


def _saved_dtypes(folder: Path) -> set[str]:
    from safetensors import safe_open

    dtypes = set()
    for file in folder.glob("*.safetensors"):
        with safe_open(str(file), framework="pt") as fh:
            dtypes |= {str(fh.get_slice(name).get_dtype()) for name in fh.keys()}
    return dtypes


def test_dtype_resaves_the_imported_copy_in_that_dtype(tmp_path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = tiny_llama_folder(tmp_path / "src")
    assert _saved_dtypes(folder) == {"F32"}
    ctx = _ctx(tmp_path)
    store = ArtifactStore(ctx.store)
    as_is = import_model.fn("tiny", ModelConfig(path=str(folder)), ctx)
    assert _saved_dtypes(store.local_path(as_is)) == {"F32"}  # auto: the files as they are
    half = import_model.fn("tiny", ModelConfig(path=str(folder), dtype="bfloat16"), ctx)
    local = store.local_path(half)
    assert half.key != as_is.key and _saved_dtypes(local) == {"BF16"}
    assert store.manifest(half)["metrics"]["dtype"] == "bfloat16"
    assert not (local / ".source").exists() and (local / "tokenizer_config.json").exists()
    assert AutoTokenizer.from_pretrained(local)("hello world")["input_ids"] == [31373, 995]
    assert AutoModelForCausalLM.from_pretrained(local, dtype="auto").dtype == torch.bfloat16


def test_dtype_with_a_gguf_is_refused_naming_the_gguf_field():
    with pytest.raises(ValueError, match=r"dtype='float16' is for path / hub; a GGUF's dtype is gguf.dtype"):
        ModelConfig.model_validate({"gguf": {}, "dtype": "float16"})
    with pytest.raises(ValueError, match="dtype"):
        ModelConfig(path="a", dtype="int8")


def test_a_tokenizer_whose_pad_is_eos_gets_a_distinct_pad_at_import(tmp_path):
    """GPT-2 has only `<|endoftext|>` (EOS, and its unk): a new `<|pad|>` is added and the embeddings grow by one;
    a tokenizer with a safe existing token (unk distinct from EOS) reuses it, the weights untouched."""
    import json

    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = tiny_llama_folder(tmp_path / "src")
    tok = AutoTokenizer.from_pretrained(folder)
    vocab = len(tok)
    tok.pad_token = tok.eos_token  # what many released tokenizers do
    tok.save_pretrained(folder)
    # the model's vocabulary without the helper's pad row, as a released GPT-2-vocabulary model has it
    model = AutoModelForCausalLM.from_pretrained(folder, pad_token_id=tok.eos_token_id)
    model.resize_token_embeddings(vocab - 1)
    model.save_pretrained(folder)
    ctx = _ctx(tmp_path)
    ref = import_model.fn("tiny", ModelConfig(path=str(folder)), ctx)
    local = ArtifactStore(ctx.store).local_path(ref)
    tok = AutoTokenizer.from_pretrained(local)
    imported = AutoModelForCausalLM.from_pretrained(local)
    assert tok.pad_token == "<|pad|>" and tok.pad_token_id != tok.eos_token_id
    assert imported.get_input_embeddings().weight.shape[0] == len(tok) > tok.pad_token_id
    assert json.loads((local / "config.json").read_text())["pad_token_id"] == tok.pad_token_id
    assert ArtifactStore(ctx.store).manifest(ref)["metrics"]["pad"] == "added"


def test_an_existing_safe_token_becomes_the_pad(tmp_path):
    from ray_cluster.model_inputs import read_model_config  # noqa: F401  (the folder stays a causal LM)
    from tasks.data.pad_token import ensure_distinct_pad
    from transformers import AutoTokenizer

    folder = tiny_llama_folder(tmp_path / "src")
    tok = AutoTokenizer.from_pretrained(folder)
    tok.add_special_tokens({"unk_token": "<|pad|>"})  # an unk token distinct from EOS, already in the vocab
    tok.pad_token = tok.eos_token
    tok.save_pretrained(folder)
    weights = (folder / "model.safetensors").read_bytes()
    assert ensure_distinct_pad(folder)["pad"] == "existing token"
    assert AutoTokenizer.from_pretrained(folder).pad_token == "<|pad|>"
    assert (folder / "model.safetensors").read_bytes() == weights
