"""Evaluate the newest model of a name (e.g. the latest RFT policy) on the held-out split: the nightly check
that a scheduled deployment runs (configs/deployments.yaml)."""
from __future__ import annotations

import os

from prefect import flow
from pydantic import BaseModel, ConfigDict, Field

from flows.evaluate import EvalConfig, evaluate_model
from ray_cluster.connect import RayConfig
from tasks.core.catalog import latest_model
from tasks.data.prepare import TinyArithConfig, make_tiny_arith
from tasks.core.stage_cache import StageContext
from tasks.core.store import ArtifactRef, StoreSpec
from tasks.evaluation.summary_report import write_summary_report


class EvaluateLatestConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    title: str = "Nightly evaluation of the latest model"
    store: StoreSpec = StoreSpec(url=os.environ.get("WINNOW_STORE", ".winnow/store"))
    ray: RayConfig = RayConfig()
    show_progress: bool = True
    data: TinyArithConfig = TinyArithConfig()
    model_stage: str = Field(default="train_sft", description="the stage whose newest artifact is evaluated")
    model_name: str | None = Field(default="rft1", description="only artifacts of this model name (None: any)")
    eval: EvalConfig = EvalConfig()


class EvaluateLatestResult(BaseModel):
    model: ArtifactRef
    scores: dict[str, ArtifactRef]
    report: ArtifactRef
    report_uri: str


@flow(name="evaluate-latest", log_prints=True)
def evaluate_latest(cfg: EvaluateLatestConfig) -> EvaluateLatestResult:
    ctx = StageContext.for_run(cfg.store, cfg.ray, cfg.show_progress)
    problems = make_tiny_arith(cfg.data, ctx)
    model = latest_model(cfg.model_stage, cfg.model_name, ctx)
    evaluation = evaluate_model(cfg.model_name or "latest", model, problems, cfg.eval, ctx)
    report = write_summary_report(cfg.title, evaluation.scores, {}, evaluation.stages, ctx)
    return EvaluateLatestResult(model=model, scores=evaluation.scores, report=report,
                                report_uri=f"{report.uri}/report.md")
