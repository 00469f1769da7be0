"""Evaluate any model on any dataset: a model source (HF folder, s3://, hub id, packaged GGUF) × a dataset (a
built-in or your own files through HF `datasets`) × the evaluation sub-flow — greedy pass@1, maj@K and Codex's
unbiased pass@K, each with a 95% interval. `winnow run evaluate -c gsm8k`."""
from __future__ import annotations

from prefect import flow
from pydantic import Field

from flows.base import FlowConfig, FlowResult, start_run
from flows.evaluate import EvalConfig, evaluate_and_report
from tasks.data.hf_source import DatasetConfig
from tasks.data.model_source import ModelConfig, import_model
from tasks.data.prepare_dataset import load_dataset


class EvaluateFlowConfig(FlowConfig):
    title: str = "Evaluation"
    model_name: str = Field(default="model", description="the model's name in the report")
    model: ModelConfig
    data: DatasetConfig
    eval: EvalConfig = EvalConfig()


@flow(name="evaluate", log_prints=True)
def evaluate(cfg: EvaluateFlowConfig) -> FlowResult:
    ctx = start_run(cfg)
    problems = load_dataset(cfg.data, ctx)
    model = import_model(cfg.model_name, cfg.model, ctx)
    return evaluate_and_report("evaluate", cfg, ctx, cfg.model_name, model, problems)
