"""Best-of-N picks against hand-worked problems."""
import pytest

from tasks.evaluation.rerank import RerankConfig, best_of_n, curves


def _s(i, correct, score, pred):
    return {"sample_index": i, "correct": correct, "score": score, "pred": pred}


def test_picks_by_score_by_majority_and_by_any_correct():
    # the RM likes the wrong "5" most; two of four say "7" (right); the correct one is only 2nd of the first two
    samples = [_s(0, False, 0.9, "5"), _s(1, True, 0.2, "7"), _s(2, True, 0.1, "7"), _s(3, False, 0.3, "6")]
    assert best_of_n(samples, 1) == {"rm": False, "maj": False, "oracle": False}
    assert best_of_n(samples, 2) == {"rm": False, "maj": False, "oracle": True}  # a 1-1 tie goes to the first vote
    assert best_of_n(samples, 4) == {"rm": False, "maj": True, "oracle": True}
    samples[1]["score"] = 1.0
    assert best_of_n(list(reversed(samples)), 2)["rm"] is True  # by sample_index, not by row order


def test_curves_average_over_problems_and_refuse_too_large_n():
    by_prompt = {"a": [_s(0, True, 0.5, "1"), _s(1, False, 0.9, "2")],
                 "b": [_s(0, False, 0.1, "3"), _s(1, True, 0.8, "4")]}
    rows = curves(by_prompt, [1, 2])
    assert [(r["n"], r["rm"], r["maj"], r["oracle"]) for r in rows] == [(1, 0.5, 0.5, 0.5), (2, 0.5, 0.5, 1.0)]
    with pytest.raises(ValueError, match="only 2 samples"):
        curves(by_prompt, [1, 4])


def test_ns_must_increase():
    with pytest.raises(ValueError, match="increasing"):
        RerankConfig(ns=[4, 2])
