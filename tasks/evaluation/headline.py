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

    def describe(self, store, scores: dict) -> dict | None:
        """{"sentence", "metric", "comparisons"} from the per-problem scores; None when the run has no such
        comparison (or did not score one of its sides)."""
        if self.metric not in scores.get(self.method, {}):
            return None
        method = per_problem_scores(store, scores[self.method][self.metric])
        comparisons = {b: paired_difference(method, per_problem_scores(store, scores[b][self.metric]))
                       for b in self.baselines if self.metric in scores.get(b, {})}
        if not comparisons:
            return None
        return {"sentence": sentence(self.label, comparisons), "metric": self.metric, "comparisons": comparisons}


class RankingHeadline(BaseModel):
    """A reward model's first line: its held-out pairwise accuracy, and its best-of-N pick against the majority
    vote of the same samples, paired per problem (the reward-model flow's scores under `result`)."""

    model_config = ConfigDict(frozen=True)
    result: str = "reward model"
    pairs: str = "held-out pairs"
    best_of_n: str = "best-of-n"
    label: str = "The reward model"
    ranks: str = "the correct answer above the incorrect one"  # what a held-out pair compares

    def describe(self, store, scores: dict) -> dict | None:
        from collections import defaultdict

        from tasks.core.tables import read_rows
        from tasks.evaluation.rerank import best_of_n

        got = scores.get(self.result, {})
        if self.pairs not in got:
            return None
        pairs = store.manifest(got[self.pairs])["metrics"]
        best = None
        if self.best_of_n in got:
            k = store.manifest(got[self.best_of_n])["metrics"]["curves"][-1]["n"]
            by_prompt: dict[str, list[dict]] = defaultdict(list)
            for r in read_rows(store, got[self.best_of_n], "scored"):
                by_prompt[r["prompt_id"]].append(r)
            picks = {p: best_of_n(samples, k) for p, samples in by_prompt.items()}
            rm = {p: float(pick["rm"]) for p, pick in picks.items()}
            maj = {p: float(pick["maj"]) for p, pick in picks.items()}
            best = paired_difference(rm, maj) | {"n_samples": k, "rm": sum(rm.values()) / len(rm),
                                                 "maj": sum(maj.values()) / len(maj)}
        metric = "pairwise accuracy" + (f", best-of-{best['n_samples']} vs majority" if best else "")
        return {"sentence": ranking_sentence(self.label, pairs, best, self.ranks), "metric": metric,
                "comparisons": {"majority": best} if best else {}}


def per_problem_scores(store, score) -> dict[str, float]:
    """Problem id → score from a score artifact's per-problem table (what paired comparisons pair)."""
    from tasks.core.tables import read_rows

    return {r["prompt_id"]: float(r["score"]) for r in read_rows(store, score, "per_problem")}


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


def verdict(baseline: str, d: dict) -> str:
    """'beat its base by +3.1 points [+1.2, +5.0]' — beat only when the whole interval is above zero."""
    lo, hi = (100 * x for x in d["ci95"])
    numbers = f"{100 * d['diff']:+.1f} points [{lo:+.1f}, {hi:+.1f}]"
    if lo > 0:
        return f"beat {baseline} by {numbers}"
    if hi < 0:
        return f"did worse than {baseline}: {numbers}"
    return f"did not beat {baseline} ({numbers}, the interval includes 0)"


def sentence(label: str, comparisons: dict[str, dict]) -> str:
    """'RFT beat its base by +3.1 points [+1.2, +5.0] and did not beat its control (-2.0 [-4.1, +0.1])'."""
    parts = [verdict(f"its {baseline}", d) for baseline, d in comparisons.items()]
    n = max((d["n"] for d in comparisons.values()), default=0)
    return f"{label} " + " and ".join(parts) + f" — paired 95% intervals over {n} held-out problems."


def ranking_sentence(label: str, pairs: dict, best: dict | None,
                     ranks: str = "the correct answer above the incorrect one") -> str:
    """A reward model's first line (issue 15): how often it ranks the correct answer above the incorrect one on
    held-out pairs, against chance, and whether its best-of-N pick beats the majority vote over the same samples.
    `pairs`: {"accuracy", "ci95", "n"}; `best`: a paired_difference of RM pick vs majority, plus "n_samples",
    "rm" and "maj" (accuracies)."""
    lo, hi = (100 * x for x in pairs["ci95"])
    text = (f"{label} ranked {ranks} in {100 * pairs['accuracy']:.1f}% "
            f"[{lo:.1f}, {hi:.1f}] of {pairs['n']} held-out pairs ("
            + ("above" if lo > 50 else "not above") + " chance, 50%)")
    if best is None:
        return text + "."
    k = best["n_samples"]
    return (text + f"; its best-of-{k} pick ({100 * best['rm']:.1f}%) {verdict(f'majority-of-{k}', best)} "
            f"({100 * best['maj']:.1f}%) — paired 95% interval over {best['n']} held-out problems.")
