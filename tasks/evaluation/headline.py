"""A report's first line says what happened (issue 15): did the method beat each of its baselines, by how much,
with a paired 95% interval over the same held-out problems. Pure functions; the report stage feeds them the
per-problem scores of the score artifacts."""
from __future__ import annotations

import math

from pydantic import BaseModel, ConfigDict, Field

Z95 = 1.959963984540054


class Headline(BaseModel):
    """Which scored model is the method, which are its baselines, on which metric; declared by each flow."""

    model_config = ConfigDict(frozen=True)
    method: str = Field(description="the scores' key of the method's model, e.g. 'rft'")
    baselines: tuple[str, ...] = Field(description="scores' keys it must beat, in the order they are reported")
    metric: str = "pass@1"
    label: str = Field(description="how the sentence names the method, e.g. 'RFT'")


def paired_difference(method: dict[str, float], baseline: dict[str, float]) -> dict:
    """Mean per-problem difference (method - baseline) over the problems both were scored on, its 95% normal
    interval from the paired differences' spread, and McNemar's exact two-sided p on the discordant problems
    (both scores 0/1). A paired interval, not two Wilson intervals: the same problems are easy or hard for both."""
    common = sorted(set(method) & set(baseline))
    if not common:
        raise ValueError("the method and its baseline share no scored problem; they were not evaluated on the same "
                         "held-out set")
    diffs = [method[p] - baseline[p] for p in common]  # (n,)
    n, mean = len(diffs), sum(diffs) / len(diffs)
    sd = math.sqrt(sum((d - mean) ** 2 for d in diffs) / (n - 1)) if n > 1 else 0.0
    half = Z95 * sd / math.sqrt(n)
    wins, losses = sum(d > 0 for d in diffs), sum(d < 0 for d in diffs)
    return {"n": n, "diff": mean, "ci95": [mean - half, mean + half], "wins": wins, "losses": losses,
            "mcnemar_p": mcnemar_exact_p(wins, losses)}


def mcnemar_exact_p(wins: int, losses: int) -> float:
    """Two-sided exact binomial test of wins vs losses among discordant pairs (p = 1/2 under no difference)."""
    total = wins + losses
    if total == 0:
        return 1.0
    tail = sum(math.comb(total, i) for i in range(min(wins, losses) + 1)) / 2**total
    return min(1.0, 2 * tail)


def sentence(label: str, comparisons: dict[str, dict]) -> str:
    """'RFT beat its base by +3.1 points [+1.2, +5.0] and did not beat its control (-2.0 [-4.1, +0.1])' — beat
    only when the whole interval is above zero."""
    parts = []
    for baseline, d in comparisons.items():
        lo, hi = (100 * x for x in d["ci95"])
        numbers = f"{100 * d['diff']:+.1f} points [{lo:+.1f}, {hi:+.1f}]"
        if lo > 0:
            parts.append(f"beat its {baseline} by {numbers}")
        elif hi < 0:
            parts.append(f"did worse than its {baseline}: {numbers}")
        else:
            parts.append(f"did not beat its {baseline} ({numbers}, the interval includes 0)")
    n = max((d["n"] for d in comparisons.values()), default=0)
    return f"{label} " + " and ".join(parts) + f" — paired 95% intervals over {n} held-out problems."
