"""Where the policy recipes start (RFT, reward model): the problems — the embedded tiny-arith task or any dataset —
and the SFT base — a small Llama trained from scratch with the digit tokenizer, or a pretrained model (its own
tokenizer, chat template, EOS and pad tokens) fine-tuned on the written solutions, as the RFT paper does."""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from flows.base import FlowConfig
from tasks.core.stage_cache import StageContext
from tasks.core.store import ArtifactRef
from tasks.data.hf_source import DatasetConfig
from tasks.data.model_source import ModelConfig, import_model
from tasks.data.prepare import TinyArithConfig, TokenizerConfig, build_tokenizer, make_tiny_arith
from tasks.data.prepare_dataset import load_dataset
from tasks.generation.generate import GenerateConfig
from tasks.labelling.label import LabelConfig
from tasks.training.train import SFTConfig, SFTSource
from tasks.training.train_until import PassRateStop, check_rule, train_base


class PolicyFlowConfig(FlowConfig):
    data: TinyArithConfig = Field(default=TinyArithConfig(), description="the embedded task (when no dataset)")
    dataset: DatasetConfig | None = Field(default=None, description="your data or a built-in, instead of tiny-arith")
    model: ModelConfig | None = Field(default=None, description="a pretrained model to start from; None: a small "
                                      "Llama from scratch (base_sft.model) with the digit tokenizer")
    tokenizer: TokenizerConfig = Field(default=TokenizerConfig(), description="from-scratch models only")
    base_sft: SFTConfig = Field(default=SFTConfig(), description="the SFT base, trained on the written solutions")
    base_stop: PassRateStop | None = Field(default=None, description="train the base on until this share of its "
                                           "samples on training problems pass, probed with the recipe's own "
                                           "`sample` and `label` (tasks/training/train_until.py); None: "
                                           "base_sft.optim.steps exactly")


class PolicyStart(BaseModel):
    model_config = ConfigDict(frozen=True)
    problems: ArtifactRef
    tokenizer: ArtifactRef  # the digit tokenizer, or the pretrained model's folder (which holds its tokenizer)
    demonstrations: SFTSource  # the written solutions
    base: ArtifactRef  # the SFT base
    init: ArtifactRef | None  # where a retrained model starts: the pretrained weights, or a fresh init (None)


def load_problems(cfg: PolicyFlowConfig, ctx: StageContext) -> ArtifactRef:
    return load_dataset(cfg.dataset, ctx) if cfg.dataset else make_tiny_arith(cfg.data, ctx)


def sft_base(cfg: PolicyFlowConfig, ctx: StageContext, problems: ArtifactRef | None = None,
             probe: tuple[GenerateConfig, LabelConfig] | None = None) -> PolicyStart:
    """The SFT base on the `train` table of `problems` (default: the config's dataset or tiny-arith); `probe`: the
    recipe's sampler and labeller of training problems, which `base_stop` needs."""
    if cfg.base_stop is not None:
        check_rule(cfg.base_sft, cfg.base_stop, can_probe=probe is not None, recipe=f"{type(cfg).__name__}'s recipe")
    problems = problems or load_problems(cfg, ctx)
    pretrained = import_model("pretrained", cfg.model, ctx) if cfg.model else None
    tokenizer = pretrained or build_tokenizer(problems, cfg.tokenizer, ctx)
    demonstrations = SFTSource(ref=problems, split="train")
    base = train_base("base", [demonstrations], tokenizer, pretrained, problems, cfg.base_sft, cfg.base_stop,
                      *(probe or (None, None)), ctx)
    return PolicyStart(problems=problems, tokenizer=tokenizer, demonstrations=demonstrations, base=base,
                       init=pretrained)


def pretrained_start(cfg: PolicyFlowConfig, ctx: StageContext) -> PolicyStart:
    """Start from the pretrained (instruct) model itself, no SFT step: online RL as verl's baselines run it
    (Qwen2.5-0.5B-Instruct on GSM8K). `cfg.model` is required (checked where the flow's config is validated)."""
    problems = load_dataset(cfg.dataset, ctx) if cfg.dataset else make_tiny_arith(cfg.data, ctx)
    pretrained = import_model("pretrained", cfg.model, ctx)
    return PolicyStart(problems=problems, tokenizer=pretrained, demonstrations=SFTSource(ref=problems, split="train"),
                       base=pretrained, init=pretrained)
