"""The generate flow on a handful of prompts: a real pretrained model (SmolLM2 from its package) on GSM8K read
through HF `datasets`, labelled, with the generation and label sections in its report."""
from __future__ import annotations

import pytest

from flows.config import load_config
from flows.generate import GenerateFlowConfig, generate
from tasks.core.store import ArtifactStore
from tasks.core.tables import read_rows

pytestmark = pytest.mark.slow


def test_generate_flow_on_four_gsm8k_questions(tmp_path, ray_local):
    cfg = load_config(GenerateFlowConfig, "generate", "smoke", [f"store.url={tmp_path / 'store'}"])
    result = generate(cfg)
    store = ArtifactStore(cfg.store)
    samples = read_rows(store, result.outputs["samples"], "samples")
    assert len(samples) == 8 and {s["prompt_id"] for s in samples} == {f"gsm8k-test-{i:05d}" for i in range(4)}
    assert all(s["finish_reason"] in {"stop", "length"} and s["completion_tokens"] > 0 for s in samples)
    labels = read_rows(store, result.outputs["labels"], "labels")
    assert len(labels) == 8 and all(isinstance(r["correct"], bool) for r in labels)
    report = (store.local_path(result.report) / "report.md").read_text()
    assert "| sample_completions[gsm8k] | 4 | 8 |" in report and "| label_rewards[gsm8k] | 8 |" in report
    assert "| load_dataset[gsm8k] |" in report
