"""Generation on real data with a real pretrained model: GSM8K questions (or any dataset: a built-in or your own
files, tasks/data/hf_source.py) × SmolLM2-135M-Instruct (or any model source: HF folder, s3://, hub id, packaged
GGUF; tasks/data/model_source.py), labelled by answer, with a throughput report."""
from __future__ import annotations

from prefect import flow
from pydantic import Field

from flows.base import FlowConfig, FlowResult, finish_run, start_run
from tasks.generation.generate import GenerateConfig, sample_completions
from tasks.data.import_model import GGUFModelConfig
from tasks.data.model_source import ModelConfig, import_model
from tasks.labelling.label import LabelConfig, label_rewards
from tasks.data.hf_source import DatasetConfig
from tasks.data.prepare_dataset import load_dataset


class GenerateFlowConfig(FlowConfig):
    title: str = "GSM8K × SmolLM2-135M-Instruct"
    data: DatasetConfig = Field(
        default_factory=lambda: DatasetConfig.model_validate({"builtin": "gsm8k", "limit_test": 64}),
        description="any dataset: a built-in (gsm8k, math, math500) or your files with a column mapping")
    model_name: str = "smollm2-135m-instruct"
    model: ModelConfig = Field(default=ModelConfig(gguf=GGUFModelConfig()),
                               description="the model: path, hub or gguf (default: the packaged SmolLM2 GGUF)")
    sample: GenerateConfig = GenerateConfig(split="test")
    label: LabelConfig = LabelConfig(split="test")


@flow(name="generate", log_prints=True)
def generate(cfg: GenerateFlowConfig) -> FlowResult:
    ctx = start_run(cfg)
    problems = load_dataset(cfg.data, ctx)
    model = import_model(cfg.model_name, cfg.model, ctx)
    samples = sample_completions("gsm8k", problems, {cfg.model_name: model}, cfg.sample, ctx)
    labels = label_rewards("gsm8k", samples, problems, cfg.label, ctx)
    return finish_run("generate", cfg, ctx, outputs={"samples": samples, "labels": labels})
