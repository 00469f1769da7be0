"""RFT on a pretrained model and the user's data, as the paper runs it: SFT the pretrained model on the written
solutions → sample → label → select → SFT the *pretrained* model on original + selected → evaluate; here a tiny
random Llama with GPT-2's real BPE tokenizer and a JSONL dataset, both read from S3 (a moto server over HTTP;
tests/flows/test_evaluate_smoke.py reads them from local files)."""
from __future__ import annotations

import json

import pytest

from flows.config import load_config
from flows.rft import RFTConfig, rft
from generation_assets import tiny_llama_folder
from tasks.core.store import ArtifactStore

pytestmark = pytest.mark.slow


def test_rft_on_a_pretrained_folder_and_a_jsonl_dataset_on_s3(tmp_path, ray_local, s3_store_spec):
    import fsspec

    options = s3_store_spec.storage_options
    bucket = s3_store_spec.url.removeprefix("s3://").split("/")[0]
    s3 = fsspec.filesystem("s3", **options)
    s3.put(str(tiny_llama_folder(tmp_path / "src")) + "/", f"{bucket}/models/tiny/", recursive=True)
    with s3.open(f"{bucket}/data/mine.jsonl", "w") as fh:
        fh.write("".join(json.dumps({"q": f"Sam has {n} pens and gets {n + 2} more. How many now?",
                                     "a": f"{n}+{n + 2}=<<{n}+{n + 2}={2 * n + 2}>>{2 * n + 2}\n#### {2 * n + 2}"})
                         + "\n" for n in range(16)))
    dataset = {"name": "mine", "format": "json", "train": [f"s3://{bucket}/data/mine.jsonl"], "test_fraction": 0.25,
               "columns": {"question": "q", "solution": "a"}, "storage_options": options}
    model = {"path": f"s3://{bucket}/models/tiny", "storage_options": options}
    cfg = load_config(RFTConfig, "rft", "smoke", [f"store.url={tmp_path / 'store'}", f"model={json.dumps(model)}",
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
