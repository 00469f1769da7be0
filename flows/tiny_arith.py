"""The embedded task the tiny-arith recipes share: problems, the digit tokenizer, and the SFT base model trained
from scratch on the written solutions (RFT's and InstructGPT's first step)."""
from __future__ import annotations

from pydantic import Field

from flows.base import FlowConfig
from tasks.core.stage_cache import StageContext
from tasks.core.store import ArtifactRef
from tasks.data.prepare import TinyArithConfig, TokenizerConfig, build_tokenizer, make_tiny_arith
from tasks.training.train import SFTConfig, SFTSource, train_sft


class TinyArithFlowConfig(FlowConfig):
    data: TinyArithConfig = TinyArithConfig()
    tokenizer: TokenizerConfig = TokenizerConfig()
    base_sft: SFTConfig = Field(default=SFTConfig(), description="the SFT base, from scratch on the solutions")


def sft_base(cfg: TinyArithFlowConfig, ctx: StageContext) -> tuple[ArtifactRef, ArtifactRef, SFTSource, ArtifactRef]:
    """(problems, tokenizer, the written solutions as SFT data, the SFT base model)."""
    problems = make_tiny_arith(cfg.data, ctx)
    tokenizer = build_tokenizer(problems, cfg.tokenizer, ctx)
    demonstrations = SFTSource(ref=problems, split="train")
    return problems, tokenizer, demonstrations, train_sft("base", [demonstrations], tokenizer, None, cfg.base_sft, ctx)
