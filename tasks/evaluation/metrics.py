"""Evaluation metrics over labelled samples, as pure functions: greedy pass@1, unbiased pass@k (Codex, Chen et
al. 2021), maj@k (self-consistency, Wang et al. 2022) with math-verify equivalence, per-group breakdowns."""
from __future__ import annotations

from collections import defaultdict
from typing import Callable, Iterable

import numpy as np

from tasks.labelling.answers import answers_match
from tasks.evaluation.intervals import wilson_ci95


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased estimate of P(at least one of k samples passes) from n samples of which c passed:
    1 - C(n-c, k) / C(n, k), computed as a stable product (Chen et al. 2021, Fig. 3)."""
    if not 0 <= c <= n or k < 1:
        raise ValueError(f"need 0 <= c <= n and k >= 1, got n={n}, c={c}, k={k}")
    if k > n:
        raise ValueError(f"pass@{k} needs at least {k} samples per problem, got {n}")
    if n - c < k:
        return 1.0
    return float(1.0 - np.prod(1.0 - k / np.arange(n - c + 1, n + 1)))


def first_sample_correct(samples: list[dict]) -> bool:
    """pass@1 with one (greedy) sample per prompt: the lowest sample_index decides."""
    return bool(min(samples, key=lambda s: s["sample_index"])["correct"])


def majority_vote_correct(samples: list[dict], same: Callable[[str, str], bool] = answers_match) -> bool:
    """maj@K: the most common answer wins, answers counted equal when math-verify says so ("0.5" = "1/2"); ties go
    to the answer voted first; unanswered samples don't vote."""
    votes = [s for s in sorted(samples, key=lambda s: s["sample_index"]) if s.get("pred") is not None]
    clusters: list[list[dict]] = []
    for vote in votes:
        home = next((c for c in clusters if same(vote["pred"], c[0]["pred"])), None)
        if home is None:
            clusters.append([vote])
        else:
            home.append(vote)
    if not clusters:
        return False
    best = max(len(c) for c in clusters)
    winner = next(c for c in clusters if len(c) == best)
    return bool(winner[0]["correct"])


def accuracy_summary(hits: Iterable[float], metric: str) -> dict:
    """Mean with a 95% Wilson interval (for 0/1 hits; pass@k estimates are averaged and the interval uses their
    rounded sum, a close approximation)."""
    values = list(hits)
    n, total = len(values), float(sum(values))
    lo, hi = wilson_ci95(round(total), n)
    return {"metric": metric, "n": n, "correct": total, "accuracy": total / n if n else 0.0, "ci95": [lo, hi]}


def breakdown(per_problem: list[dict], key: str) -> dict[str, dict]:
    """Accuracy per value of `key` (e.g. MATH's level or subject) over per-problem results {key, score}."""
    groups: dict[str, list[float]] = defaultdict(list)
    for row in per_problem:
        groups[str(row.get(key))].append(float(row["score"]))
    return {value: accuracy_summary(scores, key) for value, scores in sorted(groups.items())}
