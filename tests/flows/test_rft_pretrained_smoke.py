"""RFT on a pretrained model and the user's data, as the paper runs it: SFT the pretrained model on the written
solutions → sample → label → select → SFT the *pretrained* model on original + selected → evaluate; here a tiny
random Llama with GPT-2's real BPE tokenizer, in a local folder, and a JSONL dataset."""
from __future__ import annotations

import json

import pytest

from flows.config import load_config
from flows.rft import RFTConfig, rft
from generation_assets import tiny_llama_folder
from tasks.core.store import ArtifactStore

pytestmark = pytest.mark.slow


def test_rft_on_a_pretrained_folder_and_a_jsonl_dataset(tmp_path, ray_local):
    model = tiny_llama_folder(tmp_path / "src")
    data = tmp_path / "mine.jsonl"
    data.write_text("".join(json.dumps({"q": f"Sam has {n} pens and gets {n + 2} more. How many now?",
                                        "a": f"{n}+{n + 2}=<<{n}+{n + 2}={2 * n + 2}>>{2 * n + 2}\n#### {2 * n + 2}"})
                            + "\n" for n in range(16)))
    dataset = {"name": "mine", "format": "json", "train": [str(data)], "test_fraction": 0.25,
               "columns": {"question": "q", "solution": "a"}}
    cfg = load_config(RFTConfig, "rft", "smoke", [f"store.url={tmp_path / 'store'}", f"model.path={model}",
                                                  f"dataset={json.dumps(dataset)}", "sample.sampling.calculator=false",
                                                  "eval.maj=null"])
    result = rft(cfg)
    store = ArtifactStore(cfg.store)
    manifests = store.list("train_sft")
    # every trained model starts from the pretrained weights: the base, the RFT model, and (via the base) control
    pretrained = store.list("import_model")[-1]["key"]
    starts = {m["metrics"]["model_name"]: m["inputs"].get("init", {}).get("key") for m in manifests}
    assert starts["base"] == pretrained and starts["rft1"] == pretrained and starts["control"] != pretrained
    # the pretrained model's own tokenizer is used, not the digit tokenizer
    assert not store.list("build_tokenizer")
    assert {m["inputs"]["tokenizer"]["key"] for m in manifests} == {pretrained}
    problems = store.list("load_dataset")[-1]["metrics"]
    assert problems["train_rows"] == 12 and problems["test_rows"] == 4
    assert all(store.manifest(ref)["metrics"]["n"] == 4 for s in result.scores.values() for ref in s.values())
