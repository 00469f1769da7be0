"""Combining several rewards into one: pure functions registered by name (config `label.combine`)."""
from __future__ import annotations

import math
from typing import Callable, Sequence

from models.registry import Registry

Combiner = Callable[[Sequence[float], Sequence[float]], float]
COMBINERS = Registry("combiner")
register_combiner = COMBINERS.register


@register_combiner("product")
def combine_product(rewards: Sequence[float], weights: Sequence[float]) -> float:
    """WizardMath's r = r_I · r_A: every labeller must approve. Weights do not apply (config rejects them)."""
    return math.prod(rewards)


@register_combiner("weighted_sum")
def combine_weighted_sum(rewards: Sequence[float], weights: Sequence[float]) -> float:
    """Σ w_i · r_i."""
    return sum(w * r for r, w in zip(rewards, weights))


def threshold_reward(reward: float, threshold: float | None) -> float:
    """1.0 when `reward` reaches `threshold`, else 0.0; unchanged when no threshold is set."""
    return reward if threshold is None else float(reward >= threshold)
