"""Per-step metrics to MLflow (a real tracking store in a folder): every step of the history at its step, the
config as dotted params, the Winnow run as tags; nothing at all without a URI."""
from __future__ import annotations

import pytest

from tasks.core.tracking import TrackingConfig, log_history

mlflow = pytest.importorskip("mlflow")  # the `tracking` extra; `make setup` installs it


def test_every_step_lands_at_its_step_with_params_and_tags(tmp_path):
    cfg = TrackingConfig(mlflow_uri=f"sqlite:///{tmp_path / 'mlflow.db'}", experiment="unit")
    history = [{"step": s, "loss": 2.0 / s, "lr": 1e-3, "note": "text", "skip": None} for s in range(1, 1201)]
    run_id = log_history(cfg, run_name="train_sft[base]", tags={"winnow.run_id": "abc", "winnow.stage": "train_sft"},
                         params={"optim": {"lr": 0.001, "steps": 1200}, "lora": None}, history=history,
                         step_key="step")
    client = mlflow.MlflowClient(tracking_uri=cfg.mlflow_uri)
    run = client.get_run(run_id)
    loss = sorted(client.get_metric_history(run_id, "loss"), key=lambda m: m.step)
    assert [m.step for m in loss] == list(range(1, 1201))  # more than one batch of 1000
    assert [m.value for m in loss][:3] == pytest.approx([2.0, 1.0, 2 / 3])
    assert set(run.data.metrics) == {"loss", "lr"}  # text and None fields are not metrics
    assert run.data.params == {"optim.lr": "0.001", "optim.steps": "1200", "lora": "None"}
    assert run.data.tags["winnow.run_id"] == "abc" and run.info.status == "FINISHED"
    assert client.get_experiment(run.info.experiment_id).name == "unit"


def test_no_uri_means_no_tracking():
    assert log_history(None, run_name="x", tags={}, params={}, history=[{"step": 1, "loss": 1.0}],
                       step_key="step") is None
    assert log_history(TrackingConfig(mlflow_uri=None), run_name="x", tags={}, params={}, history=[], step_key="step") is None
