"""An SFT base trained until its own samples pass at a target rate on *training* problems (issue 15).

On tiny-code the base turns from failing to solving within a few hundred steps, and where it turns depends on the
seed: 300 steps gave 6.4% to 85.0% held-out greedy over six seeds, and RRTF beat its SFT-on-the-best control only
on the bases that still failed often (docs/rft-calibration.md, "RRTF over six seeds"). A fixed step count is
therefore a different regime per seed. This stage trains `sft.optim.steps`, then probes the model (K samples at
the sampling temperature on the first `probe_problems` training problems, labelled by the recipe's own labeller)
and trains `extend_steps` more, from the model it has, until the share of passing samples reaches `pass_rate` or
`max_steps` is spent. The test split is never read. Every segment and every probe is a stage of its own, so a
rerun reuses what was done and the run's lineage shows where the base stopped and why.
"""
from __future__ import annotations

from prefect.artifacts import create_table_artifact
from pydantic import BaseModel, ConfigDict, Field

from models.optim import lr_factor
from ray_cluster.generation import prompt_seed
from tasks.core.stage_cache import StageContext
from tasks.core.store import ArtifactRef
from tasks.generation.generate import GenerateConfig, sample_completions
from tasks.labelling.label import LabelConfig, label_rewards
from tasks.training.train import SFTConfig, SFTSource, train_sft


class PassRateStop(BaseModel):
    """When the base is done: the share of its samples on training problems that pass (never the test set)."""

    model_config = ConfigDict(extra="forbid")
    pass_rate: float = Field(gt=0, le=1, description="stop once this share of the probe's samples is correct")
    probe_problems: int = Field(default=200, ge=1, description="the first N training problems are the probe")
    extend_steps: int = Field(default=25, ge=1, description="optimizer steps added between probes")
    extend_warmup: int = Field(default=5, ge=0, description="warm-up of each added segment (its AdamW starts "
                               "from zero moments)")
    max_steps: int = Field(ge=1, description="the base never trains past this many steps, passing or not")


def extension(sft: SFTConfig, rule: PassRateStop, done: int) -> SFTConfig:
    """The next `rule.extend_steps` steps after `done`: at the learning rate the first segment ended with (a
    constant base schedule continues at its rate; an annealed one stays annealed), with a data order of its own —
    the same seed would replay the first batches of every epoch in every segment."""
    optim = sft.optim
    ended_at = optim.lr * lr_factor(optim.steps - 1, optim)
    seed = prompt_seed(optim.seed, str(done))  # the sampler's derived seed, keyed by the segment's start
    return sft.model_copy(update={"optim": optim.model_copy(update={
        "steps": rule.extend_steps, "warmup_steps": min(rule.extend_warmup, rule.extend_steps), "lr": ended_at,
        "min_lr_ratio": 1.0, "seed": seed})})


def check_rule(sft: SFTConfig, rule: PassRateStop, can_probe: bool = True, recipe: str = "this recipe") -> None:
    """Before any stage runs: the limit fits the first segment, and the recipe has a sampler and a labeller of its
    training problems to probe with."""
    if rule.max_steps < sft.optim.steps:
        raise ValueError(f"base_stop.max_steps={rule.max_steps} is below base_sft.optim.steps={sft.optim.steps}: "
                         "the first segment alone would pass the limit")
    if not can_probe:
        raise ValueError(f"base_stop: {recipe} does not sample and label its training problems, so it has nothing "
                         "to probe the base with; remove base_stop")


def train_base(name: str, sources: list[SFTSource], tokenizer: ArtifactRef, init: ArtifactRef | None,
               problems: ArtifactRef, sft: SFTConfig, rule: PassRateStop | None, sample: GenerateConfig | None,
               label: LabelConfig | None, ctx: StageContext) -> ArtifactRef:
    """The SFT base from `init` (None: a fresh init): `sft.optim.steps` steps when `rule` is None, else trained on
    until its probe (`sample`, `label`) passes at `rule.pass_rate` (see the module docstring)."""
    if rule is not None:
        check_rule(sft, rule, can_probe=sample is not None and label is not None)
    model = train_sft(name, sources, tokenizer, init, sft, ctx)
    if rule is None:
        return model
    probe = sample.model_copy(update={"split": "train", "limit": rule.probe_problems})
    steps, trail = sft.optim.steps, []
    while True:
        rate = pass_rate(f"{name}@{steps}", model, problems, probe, label, ctx)
        trail.append({"steps": steps, "pass_rate": round(rate, 4)})
        print(f"{name}: {steps} steps, {rate:.1%} of {probe.sampling.n} samples on {rule.probe_problems} training "
              f"problems pass (target {rule.pass_rate:.1%})")
        if rate >= rule.pass_rate or steps + rule.extend_steps > rule.max_steps:
            break
        model = train_sft(f"{name}+{steps}", sources, tokenizer, model, extension(sft, rule, steps), ctx)
        steps += rule.extend_steps
    create_table_artifact(key="base-stop", table=trail, description=(
        f"{name}: pass rate of its samples on training problems after each segment (target {rule.pass_rate:.0%}, "
        f"at most {rule.max_steps} steps); stopped at {steps} steps"))
    return model


def pass_rate(name: str, model: ArtifactRef, problems: ArtifactRef, probe: GenerateConfig, label: LabelConfig,
              ctx: StageContext) -> float:
    """The share of the model's probe samples its labeller calls correct (the label stage's own count)."""
    samples = sample_completions(name, problems, {"base": model}, probe, ctx)
    labels = label_rewards(name, samples, problems, label.model_copy(update={"split": "train"}), ctx)
    return ctx.open_store().manifest(labels)["metrics"]["accuracy"]
