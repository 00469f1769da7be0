"""Evaluate the newest model of a name (e.g. the latest RFT policy) on the held-out split: the nightly check
that a scheduled deployment runs (configs/deployments.yaml)."""
from __future__ import annotations

from prefect import flow
from pydantic import Field

from flows.base import FlowConfig, FlowResult, start_run
from flows.evaluate import EvalConfig, evaluate_and_report
from tasks.core.catalog import latest_model
from tasks.data.prepare import TinyArithConfig, make_tiny_arith


class EvaluateLatestConfig(FlowConfig):
    title: str = "Nightly evaluation of the latest model"
    data: TinyArithConfig = TinyArithConfig()
    model_stage: str = Field(default="train_sft", description="the stage whose newest artifact is evaluated")
    model_name: str | None = Field(default="rft1", description="only artifacts of this model name (None: any)")
    eval: EvalConfig = EvalConfig()


@flow(name="evaluate-latest", log_prints=True)
def evaluate_latest(cfg: EvaluateLatestConfig) -> FlowResult:
    ctx = start_run(cfg)
    problems = make_tiny_arith(cfg.data, ctx)  # reused from the store when the training run made it
    model = latest_model(cfg.model_stage, cfg.model_name, ctx, trained_on=problems)  # only models made from it
    return evaluate_and_report("evaluate_latest", cfg, ctx, cfg.model_name or "latest", model, problems)
