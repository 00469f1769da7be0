"""The shared flow header and the one place that applies $WINNOW_STORE."""
from __future__ import annotations

import pytest

from flows.config import load_config
from flows.reward_model import RewardModelConfig
from flows.rft import RFTConfig


def test_winnow_store_overrides_a_config_that_names_a_store(monkeypatch, tmp_path):
    monkeypatch.delenv("WINNOW_STORE", raising=False)
    assert load_config(RFTConfig, "rft", "default").store.url == ".winnow/store"  # the file's own store
    monkeypatch.setenv("WINNOW_STORE", str(tmp_path / "env-store"))
    assert load_config(RFTConfig, "rft", "default").store.url == str(tmp_path / "env-store")
    assert load_config(RewardModelConfig, "reward_model", "smoke").store.url == str(tmp_path / "env-store")
    # an explicit override still wins over the environment
    assert load_config(RFTConfig, "rft", "default", [f"store.url={tmp_path / 'cli'}"]).store.url == str(tmp_path / "cli")


def test_the_environment_replaces_only_the_store_url(monkeypatch, tmp_path):
    config = tmp_path / "s3.yaml"
    config.write_text("store: {url: s3://a/b, storage_options: {anon: true}}\n")
    monkeypatch.setenv("WINNOW_STORE", "s3://other/prefix")
    cfg = load_config(RFTConfig, "rft", str(config))
    assert cfg.store.url == "s3://other/prefix" and cfg.store.storage_options == {"anon": True}


@pytest.mark.parametrize("module, cls", [("flows.rft", "RFTConfig"), ("flows.rrtf", "RRTFConfig"),
                                         ("flows.reward_model", "RewardModelConfig"),
                                         ("flows.generate", "GenerateFlowConfig"),
                                         ("flows.evaluate_latest", "EvaluateLatestConfig")])
def test_every_flow_config_shares_the_header(module, cls):
    import importlib

    from flows.base import FlowConfig

    config = getattr(importlib.import_module(module), cls)
    assert issubclass(config, FlowConfig)
    with pytest.raises(Exception, match="extra"):
        config.model_validate({"titel": "typo"})


def test_rft_config_refuses_a_criterion_its_labeller_cannot_feed():
    from flows.config import ConfigError

    with pytest.raises(ConfigError, match="valid_calculations.*needs the label field .calc_path"):
        load_config(RFTConfig, "rft", "smoke", ["label.labeller=unit_tests"])
    cfg = load_config(RFTConfig, "rft", "smoke", ["label.labeller=unit_tests", "select.criteria=[correct]"])
    assert cfg.select.criteria == ["correct"]


@pytest.mark.parametrize("flow, cls, override, field, message", [
    ("rrtf", "RRTFConfig", "data.source=nope", "data.source", "unknown code problem source 'nope'"),
    ("rft", "RFTConfig", "select.criteria=[nope]", "select.criteria", "nope"),
])
def test_a_name_no_registry_knows_is_a_config_error_naming_the_field(flow, cls, override, field, message):
    import importlib

    from flows.config import ConfigError

    config = getattr(importlib.import_module(f"flows.{flow}"), cls)
    with pytest.raises(ConfigError) as err:
        load_config(config, flow, "smoke", [override])
    assert field in str(err.value) and message in str(err.value)


def test_score_metrics_come_from_the_registry():
    from tasks.evaluation.evaluate import METRICS, ScoreConfig, score

    rows = [{"prompt_id": "p", "sample_index": i, "correct": c, "pred": str(i), "text": ""}
            for i, c in enumerate([False, True, True, False])]
    assert sorted(METRICS) == ["maj", "pass@1", "pass@k"]
    summary, _ = score(rows, ScoreConfig(metric="pass@k", k=2))
    assert summary["metric"] == "pass@2" and summary["accuracy"] == pytest.approx(1 - 1 / 6)  # 1 - C(2,2)/C(4,2)
    with pytest.raises(ValueError, match="unknown metric 'x'"):
        ScoreConfig(metric="x")
