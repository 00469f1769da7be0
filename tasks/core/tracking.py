"""Per-step training and RL metrics to the experiment tracker a team already has (issue 18): MLflow, when a flow's
config names a tracking URI (`tracking: {mlflow_uri: ...}`; a file path, sqlite:///… or an http:// server from
infra/). One MLflow run per training stage, tagged with the Winnow run, stage and artifact, its config as params
and every step's metrics at their step. Logged when the stage commits, from the history it committed, so the
tracker shows exactly what the store holds (and a reused stage logs nothing twice). Optional: without a URI
nothing is imported."""
from __future__ import annotations

import os

from pydantic import BaseModel, ConfigDict, Field


class TrackingConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    mlflow_uri: str | None = Field(default_factory=lambda: os.environ.get("MLFLOW_TRACKING_URI"),
                                   description="MLflow tracking URI (default: $MLFLOW_TRACKING_URI); None: off")
    experiment: str = Field(default="winnow", description="MLflow experiment the runs go to")


def _flat(prefix: str, value, out: dict) -> dict:
    if isinstance(value, dict):
        for key, inner in value.items():
            _flat(f"{prefix}.{key}" if prefix else str(key), inner, out)
    else:
        out[prefix] = str(value)[:500]  # MLflow caps a param's value length
    return out


def log_history(cfg: TrackingConfig | None, *, run_name: str, tags: dict[str, str], params: dict,
                history: list[dict], step_key: str) -> str | None:
    """One MLflow run with `params` (flattened, dotted) and each numeric field of every `history` row as a
    metric at `row[step_key]`; returns the MLflow run id (None when tracking is off)."""
    if cfg is None or cfg.mlflow_uri is None:
        return None
    from mlflow import MlflowClient
    from mlflow.entities import Metric, Param, RunTag

    client = MlflowClient(tracking_uri=cfg.mlflow_uri)
    experiment = client.get_experiment_by_name(cfg.experiment)
    experiment_id = experiment.experiment_id if experiment else client.create_experiment(cfg.experiment)
    run = client.create_run(experiment_id, run_name=run_name, tags=tags)
    metrics = [Metric(key, float(value), 0, int(row[step_key])) for row in history for key, value in row.items()
               if key != step_key and isinstance(value, (int, float)) and not isinstance(value, bool)]
    flat = [Param(k, v) for k, v in _flat("", params, {}).items()]
    client.log_batch(run.info.run_id, tags=[RunTag(k, v) for k, v in tags.items()])
    for start in range(0, len(flat), 100):  # MLflow takes ≤ 100 params and ≤ 1000 metrics per batch
        client.log_batch(run.info.run_id, params=flat[start:start + 100])
    for start in range(0, len(metrics), 1000):
        client.log_batch(run.info.run_id, metrics=metrics[start:start + 1000])
    client.set_terminated(run.info.run_id)
    return run.info.run_id
