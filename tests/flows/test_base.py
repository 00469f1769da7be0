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
