"""The whole RFT flow on a handful of problems, under a real (ephemeral) Prefect API and a local Ray cluster."""
from __future__ import annotations

import json

import pytest

from flows.config import load_config
from flows.rft import RFTConfig, rft
from tasks.core.store import ArtifactStore

pytestmark = pytest.mark.slow

STAGES = {"make_tiny_arith", "build_tokenizer", "train_sft", "sample_completions", "label_rewards",
          "select_samples", "score_accuracy", "write_report"}


@pytest.fixture(scope="module")
def prefect_api():
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


def test_rft_flow_end_to_end_then_fully_reused(tmp_path, ray_local, prefect_api, keep_smoke_store):
    cfg = load_config(RFTConfig, "rft", "smoke", [f"store.url={tmp_path / 'store'}"])
    first = rft(cfg)
    store = ArtifactStore(cfg.store)
    manifests = store.list()
    assert STAGES <= {m["stage"] for m in manifests}

    report_dir = store.local_path(first.report)
    markdown = (report_dir / "report.md").read_text()
    for needle in ("| base | pass@1 |", "| rft | pass@1 |", "| control | pass@1 |", "maj@2", "pass@2", "Time per stage",
                   "acceptance", "| sample_completions[control-greedy] |", "| sample_completions[rft-maj] |",
                   "## Training", "| train_sft[rft1] |"):
        assert needle in markdown
    for png in ("accuracy.png", "paths.png"):
        assert (report_dir / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    summary = json.loads((report_dir / "summary.json").read_text())
    assert {row["model"] for row in summary["accuracy"]} == {"base", "rft", "control"}
    assert all(row["n"] == cfg.data.n_test for row in summary["accuracy"])
    # the first line states the effect, paired over the same held-out problems (tasks/evaluation/headline.py)
    comparisons = summary["headline"]["comparisons"]
    assert set(comparisons) == {"base", "control"} and all(c["n"] == cfg.data.n_test for c in comparisons.values())
    assert markdown.splitlines()[2] == f"**{summary['headline']['sentence']}** (pass@1)"

    # the model folders load in transformers and generate
    from transformers import AutoModelForCausalLM, AutoTokenizer
    base = next(m for m in manifests if m["stage"] == "train_sft" and "init" not in m["inputs"])
    model_dir = store.local_path(store.lookup("train_sft", base["key"]))
    AutoModelForCausalLM.from_pretrained(model_dir), AutoTokenizer.from_pretrained(model_dir)

    # samples: K per training problem, with the fields later stages rely on
    samples = next(m for m in manifests if m["stage"] == "sample_completions" and m["config"]["split"] == "train")
    assert samples["metrics"]["samples"] == cfg.data.n_train * cfg.sample.sampling.n

    # the report is also in the Prefect UI, as a table artifact
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["accuracy"])))
        trained = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(
            any_=["train-base", "train-rft1", "train-control"])))
    assert artifacts and artifacts[-1].type == "table"
    assert {a.key for a in trained} == {"train-base", "train-rft1", "train-control"}

    # the same config again: every stage is reused, nothing new is committed
    second = rft(cfg)
    assert second.report == first.report
    assert len(store.list()) == len(manifests)
    keep_smoke_store("rft", tmp_path / "store")  # a warm start for later tests (conftest.py)

