"""Training methods by name: one registry entry per method (as verl registers its advantage estimators and
policy losses, and torchtune builds the loss a config names).

An entry (`MethodEntry`, models/methods/base.py) holds everything that differs between methods: its config
model (a `TrainConfig` subclass), the losses it allows, the tables it reads, a pure data builder, the kind of
model it trains and how the loop calls it, and the `TrainMethod` the loop runs. The training stage, the Ray
Train worker and the stage's checks look the entry up by name; none of them branches on a method.

    sft           models/methods/sft.py            SFTConfig               loss sft
    reward_model  models/methods/reward_model.py   RewardModelTrainConfig  loss pairwise_rm | ranking_rm
    dpo           models/methods/dpo.py            DPOTrainConfig          loss dpo
    rrtf          models/methods/rrtf.py           RRTFTrainConfig         loss rrtf
    prm           models/methods/prm.py            PRMTrainConfig          loss prm_bce
"""
from __future__ import annotations

from models.losses import LOSSES
from models.methods.base import (EmptyTable, LoraOptions, MethodData, MethodEntry, TrainConfig,  # noqa: F401
                                 TrainResources)
from models.registry import Registry

METHODS = Registry("training method")


def register_method(entry: MethodEntry) -> MethodEntry:
    """Add `entry` under its name; its config must name it and its losses must be registered."""
    if entry.config.method != entry.name:
        raise ValueError(f"{entry.config.__name__}.method is {entry.config.method!r}, the entry is {entry.name!r}")
    unknown = [loss for loss in entry.losses if loss not in LOSSES]
    if not entry.losses or unknown:
        raise ValueError(f"training method {entry.name!r}: losses {unknown or '()'} not registered; "
                         f"known: {sorted(LOSSES)}")
    return METHODS.register(entry.name)(entry)


def get_method(name: str) -> MethodEntry:
    """The entry of training method `name`; an unknown name is an error that lists the known ones."""
    if name not in METHODS:
        raise ValueError(f"method: unknown training method {name!r}; known: {sorted(METHODS)}")
    return METHODS[name]


# importing a method's module registers it; these come last because they import `register_method`
from models.methods import dpo, prm, reward_model, rrtf, sft  # noqa: E402,F401
from models.methods.dpo import DPOMethod, DPOTrainConfig  # noqa: E402,F401
from models.methods.prm import PRMMethod, PRMTrainConfig  # noqa: E402,F401
from models.methods.reward_model import RewardModelMethod, RewardModelTrainConfig  # noqa: E402,F401
from models.methods.rrtf import RRTFMethod, RRTFTrainConfig  # noqa: E402,F401
from models.methods.sft import SFTConfig, SFTMethod  # noqa: E402,F401
