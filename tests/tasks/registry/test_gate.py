"""The promotion gate on constructed per-problem results with known McNemar p-values."""
import pytest

from tasks.registry.gate import GateConfig, decide


def results(wins: int, losses: int, ties_correct: int = 5, ties_wrong: int = 5) -> tuple[dict, dict]:
    """(candidate, champion) per-problem 0/1 scores: `wins` problems only the candidate solves, `losses` only the
    champion, and ties both / neither solve."""
    candidate, champion, i = {}, {}, 0
    for c, h, count in ((1.0, 0.0, wins), (0.0, 1.0, losses), (1.0, 1.0, ties_correct), (0.0, 0.0, ties_wrong)):
        for _ in range(count):
            candidate[f"p{i}"], champion[f"p{i}"] = c, h
            i += 1
    return candidate, champion


def test_a_clearly_better_candidate_is_promoted_with_its_p_value():
    verdict = decide(*results(10, 0), GateConfig())
    # McNemar exact: 10 discordant, all wins: p = 2 * (1/2)^10
    assert verdict["promote"] and verdict["p_value"] == pytest.approx(2 / 1024)
    assert (verdict["wins"], verdict["losses"], verdict["n"]) == (10, 0, 20) and verdict["diff"] == pytest.approx(0.5)


def test_an_equal_candidate_is_rejected():
    verdict = decide(*results(3, 3), GateConfig())
    assert not verdict["promote"] and verdict["p_value"] == 1.0 and "not better" in verdict["reason"]


def test_a_worse_candidate_is_rejected_however_significant():
    verdict = decide(*results(0, 10), GateConfig())
    assert not verdict["promote"] and verdict["p_value"] == pytest.approx(2 / 1024)
    assert "worse" in verdict["reason"]


def test_better_by_chance_is_rejected():
    # 6 wins, 1 loss: p = 2 * (1 + 7) / 128 = 0.125
    verdict = decide(*results(6, 1), GateConfig(alpha=0.05))
    assert not verdict["promote"] and verdict["p_value"] == pytest.approx(16 / 128) and "chance" in verdict["reason"]
    assert decide(*results(6, 1), GateConfig(alpha=0.2))["promote"]


def test_better_than_chance_but_below_the_margin_is_rejected():
    candidate, champion = results(10, 0, ties_correct=100, ties_wrong=100)  # +10 of 210 problems = +4.8 points
    assert decide(candidate, champion, GateConfig(margin=0.02))["promote"]
    verdict = decide(candidate, champion, GateConfig(margin=0.05))
    assert not verdict["promote"] and "below the margin" in verdict["reason"]


def test_the_first_candidate_becomes_champion_and_says_why():
    verdict = decide({"p0": 0.0}, None, GateConfig())
    assert verdict["promote"] and "no champion yet" in verdict["reason"]


def test_results_on_different_problems_are_refused():
    with pytest.raises(ValueError, match="same held-out set"):
        decide({"a": 1.0}, {"b": 1.0}, GateConfig())
