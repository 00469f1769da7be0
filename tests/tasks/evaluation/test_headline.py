"""The report's first line: paired differences and McNemar's test against hand-computed values."""
import math

import pytest

from tasks.evaluation.headline import mcnemar_exact_p, paired_difference, ranking_sentence, sentence


def test_paired_difference_by_hand():
    method = {"a": 1.0, "b": 1.0, "c": 0.0, "d": 1.0, "x": 1.0}  # x: scored for the method only, left out
    baseline = {"a": 0.0, "b": 1.0, "c": 1.0, "d": 0.0}
    d = paired_difference(method, baseline)
    # differences +1, 0, -1, +1: mean 0.25, sample sd sqrt(((.75)^2 + (.25)^2 + (1.25)^2 + (.75)^2) / 3)
    sd = math.sqrt((0.5625 + 0.0625 + 1.5625 + 0.5625) / 3)
    assert d["n"] == 4 and d["diff"] == pytest.approx(0.25) and (d["wins"], d["losses"]) == (2, 1)
    assert d["ci95"] == pytest.approx([0.25 - 1.959963984540054 * sd / 2, 0.25 + 1.959963984540054 * sd / 2])


def test_mcnemar_exact_p_by_hand():
    assert mcnemar_exact_p(0, 0) == 1.0
    assert mcnemar_exact_p(2, 1) == 1.0  # 2 * P(X <= 1 | n=3) = 2 * 4/8, capped
    assert mcnemar_exact_p(10, 0) == pytest.approx(2 / 1024)
    assert mcnemar_exact_p(1, 9) == pytest.approx(2 * 11 / 1024)


def test_no_common_problem_is_an_error_not_a_number():
    with pytest.raises(ValueError, match="same held-out set"):
        paired_difference({"a": 1.0}, {"b": 0.0})


def test_the_sentence_says_beat_only_when_the_interval_is_above_zero():
    beat = {"n": 100, "diff": 0.05, "ci95": [0.01, 0.09]}
    tie = {"n": 100, "diff": 0.01, "ci95": [-0.02, 0.04]}
    worse = {"n": 100, "diff": -0.05, "ci95": [-0.08, -0.02]}
    text = sentence("RFT", {"base": beat, "control": tie})
    assert text.startswith("RFT beat its base by +5.0 points [+1.0, +9.0] and did not beat its control (+1.0")
    assert "did worse than its base: -5.0 points" in sentence("DPO", {"base": worse})


def test_the_reward_models_sentence_states_accuracy_against_chance_and_its_pick_against_the_vote():
    pairs = {"accuracy": 0.547, "ci95": [0.491, 0.601], "n": 311}
    best = {"n": 250, "diff": 0.052, "ci95": [0.01, 0.094], "n_samples": 8, "rm": 0.156, "maj": 0.104}
    text = ranking_sentence("The reward model", pairs, best)
    assert text == ("The reward model ranked the correct answer above the incorrect one in 54.7% [49.1, 60.1] of 311 "
                    "held-out pairs (not above chance, 50%); its best-of-8 pick (15.6%) beat majority-of-8 by "
                    "+5.2 points [+1.0, +9.4] (10.4%) — paired 95% interval over 250 held-out problems.")
    above = ranking_sentence("The RM", {"accuracy": 0.9, "ci95": [0.85, 0.94], "n": 200}, None)
    assert above == ("The RM ranked the correct answer above the incorrect one in 90.0% [85.0, 94.0] of 200 held-out "
                     "pairs (above chance, 50%).")
