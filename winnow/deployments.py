"""Prefect deployments from configs/deployments.yaml: each flow with its validated config as parameters and
its schedules; served by one process (`winnow serve`) or next to a local server (`winnow server`)."""
from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field

from flows.config import CONFIG_ROOT, ConfigError, load_config

DEPLOYMENTS_FILE = CONFIG_ROOT / "deployments.yaml"


class ScheduleSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    cron: str
    timezone: str = "UTC"


class DeploymentSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    flow: str
    config: str = "default"
    overrides: list[str] = Field(default_factory=list)
    description: str = ""
    schedules: list[ScheduleSpec] = Field(default_factory=list)


def read_deployments(path: Path = DEPLOYMENTS_FILE) -> list[DeploymentSpec]:
    raw = yaml.safe_load(path.read_text()) or {}
    try:
        specs = [DeploymentSpec.model_validate(d) for d in raw.get("deployments", [])]
    except Exception as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise ConfigError(f"{path}: deployment names must be unique, got {names}")
    return specs


def build_deployments(specs: list[DeploymentSpec], flows: dict, store_url: str | None = None) -> list:
    """RunnerDeployments, after validating every spec's config with its flow's model (a bad one fails here,
    before anything is registered)."""
    from zoneinfo import ZoneInfo

    from prefect.client.schemas.schedules import CronSchedule

    deployments = []
    for spec in specs:
        if spec.flow not in flows:
            raise ConfigError(f"deployment {spec.name!r}: unknown flow {spec.flow!r}; known: {sorted(flows)}")
        config_model, flow_fn = flows[spec.flow]
        overrides = spec.overrides + ([f"store.url={store_url}"] if store_url else [])
        cfg = load_config(config_model, spec.flow, spec.config, overrides)
        for schedule in spec.schedules:
            ZoneInfo(schedule.timezone)  # an unknown zone fails here, by name
        deployments.append(flow_fn.to_deployment(
            name=spec.name, description=spec.description or None,
            parameters={"cfg": cfg.model_dump(mode="json")},
            schedules=[CronSchedule(cron=s.cron, timezone=s.timezone) for s in spec.schedules],
            tags=["winnow", spec.flow]))
    return deployments
