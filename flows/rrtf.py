"""RRTF (PanGu-Coder2, Shen et al. 2023): sample K programs per problem → run their unit tests (sandboxed) →
rank by the results → train with the ranking loss plus SFT on the best → pass@1 before and after, beside a
compute-matched control (SFT on the best responses alone: RRTF without its ranking term).

The policy is a tiny model trained here on the embedded tiny-code task (`base_sft`, digit tokenizer), or a
pretrained model from any model source (`model`: HF folder, s3://, hub id or packaged GGUF, e.g. SmolLM2 for the
HumanEval config; tasks/data/model_source.py)."""
from __future__ import annotations

from prefect import flow
from pydantic import Field

from flows.base import FlowConfig, FlowResult, finish_run, start_run
from flows.controls import matched_sft
from flows.evaluate import EvalConfig, evaluate_model
from ray_cluster.generation import SamplingSpec
from tasks.generation.generate import GenerateConfig, sample_completions
from tasks.data.model_source import ModelConfig, import_model
from tasks.labelling.label import LabelConfig, label_rewards
from tasks.data.prepare import TokenizerConfig, build_tokenizer
from tasks.data.hf_source import DatasetConfig
from tasks.data.prepare_code import CodeDataConfig, make_code_problems
from tasks.data.prepare_dataset import load_dataset
from tasks.selection.preferences import PreferenceConfig, make_preferences
from tasks.core.stage_cache import StageContext
from tasks.core.store import ArtifactRef
from tasks.training.train import RRTFTrainConfig, SFTConfig, SFTSource, train_sft
from tasks.training.train_preference import train_rrtf
from tasks.training.train_until import PassRateStop, train_base
from tasks.evaluation.headline import Headline


class RRTFConfig(FlowConfig):
    title: str = "RRTF on tiny-code"
    data: CodeDataConfig = CodeDataConfig()
    dataset: DatasetConfig | None = Field(default=None, description="code problems with unit tests (answer_format: "
                                          "tests): a built-in (humaneval, humaneval_half) or your files, instead "
                                          "of tiny-code")
    tokenizer: TokenizerConfig = TokenizerConfig()
    base_sft: SFTConfig = SFTConfig()
    base_stop: PassRateStop | None = Field(default=None, description="train the base on until this share of its "
                                           "samples on training problems pass (docs/rft-calibration.md); None: "
                                           "base_sft.optim.steps exactly. Like base_sft, unused with a "
                                           "pretrained `model`")
    model: ModelConfig | None = Field(default=None, description="a pretrained model to start from; None: a tiny "
                                      "model trained from scratch (base_sft) with the digit tokenizer")
    sample: GenerateConfig = GenerateConfig(split="train", sampling=SamplingSpec(n=8, temperature=1.0))
    label: LabelConfig = LabelConfig(labeller="unit_tests", split="train")
    preferences: PreferenceConfig = PreferenceConfig(heldout_fraction=0.0)
    rrtf: RRTFTrainConfig = RRTFTrainConfig(optim={"loss": "rrtf", "steps": 100, "lr": 1e-3})
    eval: EvalConfig = EvalConfig(label=LabelConfig(labeller="unit_tests", split="test"))


def initial_policy(cfg: RRTFConfig, problems: ArtifactRef, ctx: StageContext) -> tuple[ArtifactRef, ArtifactRef]:
    """(tokenizer, policy): an imported pretrained model (its folder holds its tokenizer), or a tiny model
    trained from scratch on the training solutions (for a fixed number of steps, or until its samples on the
    training problems pass at `base_stop.pass_rate`)."""
    if cfg.model is not None:
        model = import_model("pretrained", cfg.model, ctx)
        return model, model
    tokenizer = build_tokenizer(problems, cfg.tokenizer, ctx)
    return tokenizer, train_base("code-base", [SFTSource(ref=problems, split="train")], tokenizer, None, problems,
                                 cfg.base_sft, cfg.base_stop, cfg.sample, cfg.label, ctx)


HEADLINE = Headline(method="rrtf", baselines=("base", "control"), label="RRTF")


@flow(name="rrtf", log_prints=True)
def rrtf(cfg: RRTFConfig) -> FlowResult:
    ctx = start_run(cfg)
    problems = load_dataset(cfg.dataset, ctx) if cfg.dataset else make_code_problems(cfg.data, ctx)
    tokenizer, base = initial_policy(cfg, problems, ctx)
    samples = sample_completions("rrtf", problems, {"base": base}, cfg.sample, ctx)
    tested = label_rewards("rrtf", samples, problems, cfg.label, ctx)
    ranked = make_preferences("rrtf", tested, problems, cfg.preferences, ctx)
    tuned = train_rrtf("rrtf", ranked, tokenizer, base, cfg.rrtf, ctx)
    control = train_sft("rrtf-control", [SFTSource(ref=ranked, split="best_train")], tokenizer, base,
                        matched_sft(cfg.rrtf), ctx)
    models = {"base": base, "rrtf": tuned, "control": control}
    scores = {name: evaluate_model(name, model, problems, cfg.eval, ctx) for name, model in models.items()}
    return finish_run("rrtf", cfg, ctx, scores, outputs={"model": tuned, "control": control}, headline=HEADLINE)
