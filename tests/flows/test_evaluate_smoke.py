"""The evaluate flow on a handful of prompts: a pretrained-style HF folder (tiny random Llama with GPT-2's real
BPE tokenizer) × the user's own JSONL dataset, scored greedy pass@1, maj@2 and pass@2."""
from __future__ import annotations

import json

import pytest
import yaml

from flows.config import load_config
from flows.evaluation import EvaluateFlowConfig, evaluate
from generation_assets import tiny_llama_folder
from tasks.core.store import ArtifactStore

pytestmark = pytest.mark.slow


def test_evaluate_any_model_on_any_dataset(tmp_path, ray_local):
    model = tiny_llama_folder(tmp_path / "src")
    data = tmp_path / "problems.jsonl"
    rows = [{"q": f"What is {n} + {n}?", "a": f"{n}+{n}={2 * n}\n#### {2 * n}", "lvl": n % 2} for n in range(8)]
    rows.append({"q": "What is nothing?", "a": "no answer line", "lvl": 0})  # bad: skipped and counted
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    engine = {"backend": "hf", "batch_size": 8}
    config = tmp_path / "eval.yaml"
    config.write_text(yaml.safe_dump({
        "title": "tiny × mine", "store": {"url": str(tmp_path / "store")}, "model_name": "tiny",
        "model": {"path": str(model)},
        "data": {"name": "mine", "format": "json", "train": [str(data)], "test_fraction": 0.5,
                 "columns": {"question": "q", "solution": "a", "extra": {"level": "lvl"}}, "on_bad_row": "skip"},
        "eval": {"greedy": {"split": "test", "sampling": {"n": 1, "max_tokens": 8}, "engine": engine},
                 "maj": {"split": "test", "sampling": {"n": 2, "temperature": 1.0, "max_tokens": 8}, "engine": engine},
                 "label": {"labeller": "math_answer", "split": "test"},
                 "rescore": ["gsm8k_strict", "gsm8k_flexible"], "breakdown": "level"}}))
    cfg = load_config(EvaluateFlowConfig, "evaluate", str(config))
    result = evaluate(cfg)
    store = ArtifactStore(cfg.store)
    assert set(result.scores["tiny"]) == {"pass@1", "maj", "pass@k", "pass@1[gsm8k_strict]",
                                          "pass@1[gsm8k_flexible]"}
    metrics = {m: store.manifest(ref)["metrics"] for m, ref in result.scores["tiny"].items()}
    assert all(m["n"] == 4 for m in metrics.values()) and metrics["pass@k"]["metric"] == "pass@2"
    assert metrics["pass@1[gsm8k_strict]"]["metric"] == "pass@1 [gsm8k_strict]"
    levels = metrics["pass@1"]["by_level"]  # the 4 held-out problems by their `lvl` column
    assert sum(group["n"] for group in levels.values()) == 4 and set(levels) <= {"0", "1"}
    report = (store.local_path(result.report) / "report.md").read_text()
    assert "| tiny | pass@1 | 4 |" in report and "| tiny | maj@2 | 4 |" in report
    assert "| import_model[tiny] |" in report and "| load_dataset[mine] |" in report
    assert "## Scores by group" in report and "| score_accuracy[tiny-pass@1] | level | 0 | 2 |" in report
    # the bad row is in the report, counted with its reason, not silently dropped
    assert "| load_dataset[mine] | " in report and "| 4 | 4 | 1; train: a: has no '#### <answer>' line: 1 |" in report
