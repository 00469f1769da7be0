import math

import pytest

from tasks.evaluation.evaluate import ScoreConfig, score
from tasks.evaluation.intervals import wilson_ci95
from tasks.evaluation.metrics import breakdown, majority_vote_correct, pass_at_k
from tasks.labelling.reward_combine import COMBINERS, threshold_reward


def test_wilson_interval_hand_computed():
    lo, hi = wilson_ci95(50, 100)
    assert lo == pytest.approx(0.4038, abs=1e-4) and hi == pytest.approx(0.5962, abs=1e-4)
    assert wilson_ci95(0, 10)[0] == 0.0 and wilson_ci95(0, 10)[1] == pytest.approx(0.2775, abs=1e-4)
    assert wilson_ci95(0, 0) == (0.0, 0.0)
    # exactly the edge at 0 and n successes: the formula alone gives 3.5e-18 for 0 of 100
    assert wilson_ci95(0, 100)[0] == 0.0 and wilson_ci95(100, 100)[1] == 1.0


def test_the_accuracy_plot_takes_bounds_on_the_wrong_side_of_the_estimate(tmp_path):
    """pass@k's interval comes from the rounded sum: 0.4% from 0.4 of 100 problems has a lower bound of 0 but
    0.6% rounds to 1 of 100, and a bound can land above the mean; the plot draws it as a zero-length bar."""
    from tasks.evaluation.report import plot_accuracy

    rows = [{"model": "m", "metric": "pass@4", "accuracy": 0.0, "ci95_lo": 1e-9, "ci95_hi": 0.037},
            {"model": "m", "metric": "pass@1", "accuracy": 0.5, "ci95_lo": 0.4, "ci95_hi": 0.49}]
    plot_accuracy(rows, tmp_path / "a.png")
    assert (tmp_path / "a.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_pass_at_k_matches_the_combinatorial_definition():
    # n=5 samples, c=2 correct: pass@1 = 2/5; pass@2 = 1 - C(3,2)/C(5,2) = 1 - 3/10
    assert pass_at_k(5, 2, 1) == pytest.approx(0.4)
    assert pass_at_k(5, 2, 2) == pytest.approx(0.7)
    assert pass_at_k(10, 3, 5) == pytest.approx(1 - math.comb(7, 5) / math.comb(10, 5))
    assert pass_at_k(4, 0, 2) == 0.0 and pass_at_k(4, 3, 2) == 1.0  # fewer than k failures: always passes
    # large n where the naive ratio of binomials overflows a float
    assert pass_at_k(2000, 1, 1) == pytest.approx(1 / 2000)
    with pytest.raises(ValueError, match="at least 3 samples"):
        pass_at_k(2, 1, 3)


def _s(idx, pred, correct, pid="p"):
    return {"prompt_id": pid, "sample_index": idx, "pred": pred, "correct": correct}


def test_majority_vote_counts_equivalent_answers_together():
    assert majority_vote_correct([_s(0, "3", False), _s(1, "4", True), _s(2, "4", True), _s(3, None, False)])
    assert not majority_vote_correct([_s(0, "3", False), _s(1, "3", False), _s(2, "4", True)])
    assert not majority_vote_correct([_s(0, None, False)])
    # a tie goes to the answer that appeared first
    assert not majority_vote_correct([_s(0, "3", False), _s(1, "4", True), _s(2, "3", False), _s(3, "4", True)])
    # 0.5 and \frac{1}{2} are one answer with two votes, beating 2 (math-verify equivalence)
    assert majority_vote_correct([_s(0, "2", False), _s(1, "0.5", True), _s(2, "\\frac{1}{2}", True)])


def test_score_pass_at_1_pass_at_k_and_breakdown():
    rows = [_s(0, "1", True, "a"), _s(0, "2", False, "b"), _s(0, "3", True, "c"), _s(0, "4", True, "d")]
    summary, per_problem = score(rows, ScoreConfig())
    assert summary["accuracy"] == 0.75 and summary["n"] == 4 and len(per_problem) == 4
    assert summary["ci95"] == list(wilson_ci95(3, 4))
    many = [_s(i, str(i), i < c, pid) for pid, c in (("a", 1), ("b", 0)) for i in range(4)]
    summary, _ = score(many, ScoreConfig(metric="pass@k", k=2), {"a": {"level": 1}, "b": {"level": 2}})
    assert summary["metric"] == "pass@2" and summary["accuracy"] == pytest.approx((0.5 + 0.0) / 2)
    summary, _ = score(many, ScoreConfig(metric="pass@k", k=2, breakdown="level"),
                       {"a": {"level": 1}, "b": {"level": 2}})
    assert summary["by_level"]["1"]["accuracy"] == 0.5 and summary["by_level"]["2"]["accuracy"] == 0.0


def test_breakdown_groups_by_field():
    rows = [{"level": 1, "score": 1.0}, {"level": 1, "score": 0.0}, {"level": 3, "score": 1.0}]
    out = breakdown(rows, "level")
    assert out["1"]["accuracy"] == 0.5 and out["1"]["n"] == 2 and out["3"]["accuracy"] == 1.0


def test_reward_combinations_hand_computed():
    assert COMBINERS["product"]([1.0, 0.5], [1, 1]) == 0.5  # WizardMath r = r_I * r_A
    assert COMBINERS["product"]([0.0, 0.9], [1, 1]) == 0.0
    assert COMBINERS["weighted_sum"]([1.0, 0.5], [0.7, 0.3]) == pytest.approx(0.85)
    assert threshold_reward(0.85, 0.8) == 1.0 and threshold_reward(0.79, 0.8) == 0.0
    assert threshold_reward(0.3, None) == 0.3
