"""Expert iteration against a model registry (issue 18; Anthropic's iterated online RLHF, RFT's compounding rounds).

The registry's champion (the SFT base the first time) → K samples per training problem → label by answer → keep
correct, distinct paths → SFT the champion on the written solutions + the kept ones → evaluate the candidate on
the held-out problems → promotion gate: it replaces the champion only if it is better on the same problems by the
margin, with McNemar's exact p below alpha; else it stays a rejected candidate with the reason. N rounds per run,
or one round per scheduled run (configs/deployments.yaml: improve-weekly); every round's stages are reused on
rerun, and so is the gate's decision, so nothing is promoted twice.
"""
from __future__ import annotations

from prefect import flow
from pydantic import Field

from flows.base import FlowResult, finish_run, start_run
from flows.evaluate import EvalConfig, evaluate_model
from flows.policy import PolicyFlowConfig, sft_base
from ray_cluster.generation import SamplingSpec
from tasks.core.stage_cache import StageContext
from tasks.core.store import ArtifactRef
from tasks.generation.generate import GenerateConfig, sample_completions
from tasks.labelling.label import LabelConfig, label_rewards
from tasks.registry import sections  # noqa: F401  (the gate's and the trend's report sections)
from tasks.registry.stages import (
    Contender, RegistryConfig, candidates_tried, champion_trend, current_champion, promotion_gate,
)
from tasks.selection.select import SelectConfig, select_samples
from tasks.training.train import SFTConfig, SFTSource, train_sft


class ImproveConfig(PolicyFlowConfig):
    title: str = "Expert iteration on tiny-arith"
    registry: RegistryConfig = RegistryConfig()
    rounds: int = Field(default=1, ge=1, description="champion → candidate → gate rounds in this run")
    sample: GenerateConfig = GenerateConfig(split="train", sampling=SamplingSpec(n=16, temperature=0.7))
    label: LabelConfig = LabelConfig(split="train")
    select: SelectConfig = SelectConfig()
    train: SFTConfig = Field(default=SFTConfig(), description="the candidate's SFT, continued from the champion")
    eval: EvalConfig = Field(default=EvalConfig().greedy_only(), description="the gate's held-out scores (pass@1)")


def reseeded(cfg: ImproveConfig, attempt: int) -> tuple[GenerateConfig, SFTConfig]:
    # attempt k from the same champion samples with seed + k and trains in data order seed + k: a new candidate,
    # not the rejected one rebuilt (even when sampling found nothing new to select)
    sampling = cfg.sample.sampling.model_copy(update={"seed": cfg.sample.sampling.seed + attempt})
    optim = cfg.train.optim.model_copy(update={"seed": cfg.train.optim.seed + attempt})
    return cfg.sample.model_copy(update={"sampling": sampling}), cfg.train.model_copy(update={"optim": optim})


def scored(model: ArtifactRef, problems: ArtifactRef, cfg: EvalConfig, ctx: StageContext) -> Contender:
    # named by content, not role: the same model's evaluation is reused whether it is champion or candidate
    return Contender(model=model, score=evaluate_model(f"model-{model.key[:8]}", model, problems, cfg, ctx)["pass@1"])


@flow(name="improve", log_prints=True)
def improve(cfg: ImproveConfig) -> FlowResult:
    ctx = start_run(cfg)
    start = sft_base(cfg, ctx)
    problems = start.problems
    entry = current_champion(cfg.registry, scored(start.base, problems, cfg.eval, ctx), start.tokenizer, problems,
                             ctx, "improve")
    scores = {}
    for r in range(1, cfg.rounds + 1):
        champion = scored(entry.artifact, problems, cfg.eval, ctx).model_copy(update={"version": entry.version})
        sample, train = reseeded(cfg, candidates_tried(cfg.registry, entry, ctx))
        samples = sample_completions(f"round{r}", problems, {"champion": champion.model}, sample, ctx)
        labels = label_rewards(f"round{r}", samples, problems, cfg.label, ctx)
        selection = select_samples([labels], problems, cfg.select, ctx)
        candidate = train_sft(f"candidate{r}", [start.demonstrations, SFTSource(ref=selection, split="selected")],
                              start.tokenizer, champion.model, train, ctx)
        challenger = scored(candidate, problems, cfg.eval, ctx)
        entry = promotion_gate(f"round{r}", challenger, champion, problems, cfg.registry, ctx, "improve")
        scores |= {f"round {r} champion": {"pass@1": champion.score}, f"round {r} candidate": {"pass@1":
                                                                                            challenger.score}}
    trend = champion_trend(cfg.registry, problems, ctx)
    return finish_run("improve", cfg, ctx, scores, outputs={"champion": entry.artifact, "trend": trend})
