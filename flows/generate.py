"""Generation on real data with a real pretrained model: GSM8K questions × SmolLM2-135M-Instruct (or any
causal LM folder imported into the store), labelled by answer, with a throughput report."""
from __future__ import annotations

import os
import time

from prefect import flow
from pydantic import BaseModel, ConfigDict

from ray_cluster.connect import RayConfig
from tasks.generation.generate import GenerateConfig, sample_completions
from tasks.evaluation.generation_report import write_generation_report
from tasks.data.import_model import GGUFModelConfig, import_gguf_model
from tasks.labelling.label import LabelConfig, label_rewards
from tasks.data.prepare import GSM8KConfig, load_gsm8k
from tasks.core.stage_cache import StageContext
from tasks.core.store import ArtifactRef, StoreSpec


class GenerateFlowConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    title: str = "GSM8K × SmolLM2-135M-Instruct"
    store: StoreSpec = StoreSpec(url=os.environ.get("WINNOW_STORE", ".winnow/store"))
    ray: RayConfig = RayConfig()
    show_progress: bool = True
    data: GSM8KConfig = GSM8KConfig(limit_test=64)
    model_name: str = "smollm2-135m-instruct"
    model: GGUFModelConfig = GGUFModelConfig()
    sample: GenerateConfig = GenerateConfig(split="test")
    label: LabelConfig = LabelConfig(split="test")


class GenerateResult(BaseModel):
    samples: ArtifactRef
    report: ArtifactRef
    report_uri: str
    wall_s: float


@flow(name="generate", log_prints=True)
def generate(cfg: GenerateFlowConfig) -> GenerateResult:
    started = time.time()
    ctx = StageContext.for_run(cfg.store, cfg.ray, cfg.show_progress)
    problems = load_gsm8k(cfg.data, ctx)
    model = import_gguf_model(cfg.model, ctx)
    samples = sample_completions("gsm8k", problems, {cfg.model_name: model}, cfg.sample, ctx)
    labels = label_rewards("gsm8k", samples, problems, cfg.label, ctx)
    report = write_generation_report(cfg.title, samples, labels, ctx)
    report_uri = f"{report.uri}/report.md"
    print(f"report: {report_uri}")
    return GenerateResult(samples=samples, report=report, report_uri=report_uri, wall_s=time.time() - started)
