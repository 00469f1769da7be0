"""Preference pairs prefer only correct samples the config trusts: a lucky final answer over wrong arithmetic is
neither chosen nor rejected (issue 15)."""
import pytest
from pydantic import ValidationError

from tasks.selection.preferences import PreferenceConfig, preference_pairs, trusted


def _s(i, correct, text, calc_path):
    return {"sample_index": i, "correct": correct, "text": text, "calc_path": calc_path}


def test_a_lucky_correct_answer_is_not_chosen_when_calculations_must_be_valid():
    samples = [_s(0, True, "lucky", ["8*8=40", "4+40=43"]), _s(1, True, "sound", ["8*8=64"]),
               _s(2, False, "wrong", ["8*8=64", "64+1=66"])]
    assert preference_pairs(samples, 4) == [("lucky", "wrong"), ("sound", "wrong")]
    kept = trusted(samples, ["valid_calculations"])
    assert [s["text"] for s in kept] == ["sound", "wrong"]  # the incorrect sample stays a candidate to reject
    assert preference_pairs(kept, 4) == [("sound", "wrong")]
    assert trusted(samples, []) == samples


def test_unknown_criteria_fail_at_config_time():
    with pytest.raises(ValidationError, match="unknown criteria"):
        PreferenceConfig(chosen_criteria=["valid_calc"])


def test_ranked_groups_order_graded_rewards_and_skip_unjudged_samples():
    from tasks.selection.preferences import ranked_group

    samples = [{"sample_index": i, "text": t, "reward": r, "status": st} for i, (t, r, st) in enumerate([
        ("crash", -0.5, "error"), ("wrong", 0.0, "fail"), ("broken(", -1.0, "error"), ("right", 1.0, "pass"),
        ("unrun", 0.0, "sandbox_error"), ("wrong", 0.0, "fail"), ("", 1.0, "pass")])]
    assert ranked_group(samples, 8) == [("right", 1.0), ("wrong", 0.0), ("crash", -0.5), ("broken(", -1.0)]
    assert ranked_group(samples, 2) == [("right", 1.0), ("wrong", 0.0)]
