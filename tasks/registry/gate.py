"""The promotion gate (issue 18): a candidate replaces the champion only when it is measurably better on the same
held-out problems — its mean per-problem gain is at least `margin` and McNemar's exact test on the problems where
the two disagree gives p < `alpha`. Anything else (equal, worse, better by too little or by chance) keeps the
champion, and the candidate is recorded as rejected with the reason. Pure functions over per-problem 0/1 scores."""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from tasks.evaluation.headline import paired_difference


class GateConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    margin: float = Field(default=0.0, ge=0, description="least mean gain per problem (0.02 = 2 points)")
    alpha: float = Field(default=0.05, gt=0, lt=1, description="McNemar's exact two-sided p must be below this")


def decide(candidate: dict[str, float], champion: dict[str, float] | None, cfg: GateConfig) -> dict:
    """{"promote", "reason", and with a champion "diff", "ci95", "wins", "losses", "p_value", "n"}: `candidate`
    and `champion` map problem id → score (0/1) on the same held-out problems. With no champion yet the first
    candidate is promoted (the registry has to start somewhere; the reason says so)."""
    if champion is None:
        return {"promote": True, "reason": "no champion yet: the first candidate becomes the champion"}
    d = paired_difference(candidate, champion)
    verdict = {"diff": d["diff"], "ci95": d["ci95"], "wins": d["wins"], "losses": d["losses"],
               "p_value": d["mcnemar_p"], "n": d["n"], "margin": cfg.margin, "alpha": cfg.alpha}
    if d["diff"] <= 0:
        why = "not better than the champion" if d["diff"] == 0 else "worse than the champion"
        return verdict | {"promote": False, "reason": f"{why} ({100 * d['diff']:+.1f} points, "
                                                      f"p = {d['mcnemar_p']:.3g})"}
    if d["diff"] < cfg.margin:
        return verdict | {"promote": False, "reason": f"+{100 * d['diff']:.1f} points is below the margin of "
                                                      f"{100 * cfg.margin:.1f} (p = {d['mcnemar_p']:.3g})"}
    if d["mcnemar_p"] >= cfg.alpha:
        return verdict | {"promote": False, "reason": f"+{100 * d['diff']:.1f} points could be chance: McNemar "
                                                      f"p = {d['mcnemar_p']:.3g} >= {cfg.alpha}"}
    return verdict | {"promote": True, "reason": f"beat the champion by +{100 * d['diff']:.1f} points "
                                                 f"(p = {d['mcnemar_p']:.3g} < {cfg.alpha})"}
