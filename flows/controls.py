"""Compute-matched controls (issue 15): a preference method's run minus the term that makes it that method, so
a gain over the control is that term's and not more training. RRTF's ranking loss and DPO's preference loss
both train beside an SFT term on the best (chosen) responses; the control is that SFT term alone."""
from __future__ import annotations

from models.methods.base import TrainConfig
from tasks.training.train import SFTConfig


def matched_sft(train: TrainConfig) -> SFTConfig:
    """SFT on each group's best response alone, with the method's model, optimiser, steps and rows per step
    (derived from the method's config, so the two cannot drift apart)."""
    return SFTConfig(model=train.model, optim=train.optim.model_copy(update={"loss": "sft"}), batching="padded",
                     resources=train.resources, lora=train.lora, init_seed=train.init_seed)
