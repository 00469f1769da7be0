"""Confidence intervals for accuracies (pure: no Prefect, no Ray, so benchmarks can use them anywhere)."""
from __future__ import annotations

import math


def wilson_ci95(successes: int, n: int) -> tuple[float, float]:
    """Wilson score interval: stays inside [0, 1] and behaves near 0% and 100%, unlike the normal approximation."""
    if n == 0:
        return (0.0, 0.0)
    z = 1.959963984540054
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    # at 0 or n successes the bound is exactly the edge (the formula leaves a rounding error, e.g. 3e-18 above 0,
    # which put the lower bound above the estimate and broke the report's error bars)
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == n else min(1.0, centre + half)
    return (low, high)
