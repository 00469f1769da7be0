"""What every flow shares: its config header (title, store, Ray, progress), how a run starts (a checked store, a
fresh run id) and how it ends (the one report stage over the run's lineage, the same result type)."""
from __future__ import annotations

import os
import time

from pydantic import BaseModel, ConfigDict, Field

from flows.config import DEFAULT_STORE, STORE_ENV
from ray_cluster.connect import RayConfig
from tasks.core.stage_cache import StageContext
from tasks.core.store import ArtifactRef, StoreSpec
from tasks.core.tracking import TrackingConfig
from tasks.evaluation.headline import Headline, RankingHeadline
from tasks.evaluation.report import Scores, write_report


def default_store() -> StoreSpec:
    return StoreSpec(url=os.environ.get(STORE_ENV, DEFAULT_STORE))


class FlowConfig(BaseModel):
    """The header of every flow's config; a flow's own config adds its stages' sections."""

    model_config = ConfigDict(extra="forbid")
    title: str = "Winnow run"
    store: StoreSpec = Field(default_factory=default_store, description=f"artifact store (${STORE_ENV} overrides)")
    ray: RayConfig = RayConfig()
    show_progress: bool = True
    tracking: TrackingConfig = Field(default_factory=TrackingConfig, description="per-step metrics to MLflow too "
                                     "($MLFLOW_TRACKING_URI when set)")


class FlowResult(BaseModel):
    """What every flow returns: its report, its named outputs (models, evaluations), its scores."""

    flow: str
    run_id: str
    report: ArtifactRef
    report_uri: str
    outputs: dict[str, ArtifactRef] = {}
    scores: Scores = {}
    wall_s: float


def start_run(cfg: FlowConfig) -> StageContext:
    """A fresh run's context, after checking the store can be reached (fail at start, not an hour in)."""
    return StageContext.for_run(cfg.store, cfg.ray, cfg.show_progress, cfg.tracking)


def finish_run(flow: str, cfg: FlowConfig, ctx: StageContext, scores: Scores | None = None,
               outputs: dict[str, ArtifactRef] | None = None,
               headline: Headline | RankingHeadline | None = None) -> FlowResult:
    """Write the report over everything the run committed or reused (first line: `headline`'s comparison), and
    return the common result."""
    report = write_report(flow, cfg.title, scores or {}, ctx, headline)
    return FlowResult(flow=flow, run_id=ctx.run_id, report=report, report_uri=f"{report.uri}/report.md",
                      outputs=outputs or {}, scores=scores or {}, wall_s=time.time() - ctx.started_at)
