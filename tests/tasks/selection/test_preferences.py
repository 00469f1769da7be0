"""Preference pairs prefer only correct samples the config trusts: a lucky final answer over wrong arithmetic is
neither chosen nor rejected (issue 15)."""
import pytest
from pydantic import ValidationError

from tasks.core.stage_cache import StageContext
from tasks.core.store import ArtifactStore, StoreSpec
from tasks.core.tables import read_rows
from tasks.selection.preferences import (PreferenceConfig, judged, make_preferences, preference_pairs, ranked_group,
                                         trusted)

from stored_tables import commit_table


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


def test_unjudged_samples_are_neither_rejected_nor_ranked(tmp_path):
    """A program the sandbox could not run is no evidence: before, `preference_pairs` made it a rejected
    response. Pairs and groups alike now leave it out, and the stage counts what it dropped."""
    store = ArtifactStore(StoreSpec(url=str(tmp_path / "store")))
    problems = commit_table(store, "problems", "train", [{"id": "f", "prompt": "def f():\n"}], tmp_path)
    labels = commit_table(store, "labels", "labels", [
        {"prompt_id": "f", "sample_index": i, "text": t, "reward": r, "correct": r == 1.0, "status": st}
        for i, (t, r, st) in enumerate([
            ("crash", -0.5, "error"), ("unrun", 0.0, "sandbox_error"), ("broken(", -1.0, "error"),
            ("right", 1.0, "pass"), ("hung verifier", 0.0, "label_timeout"), ("wrong", 0.0, "fail"),
            ("", 1.0, "pass")])], tmp_path)
    ctx = StageContext(store=store.spec, show_progress=False)
    cfg = PreferenceConfig(heldout_fraction=0.0, max_pairs_per_prompt=8)
    ref = make_preferences.fn("test", labels, problems, cfg, ctx)
    pairs = read_rows(store, ref, "pairs_train")
    assert [(p["chosen"], p["rejected"]) for p in pairs] == [("right", "crash"), ("right", "broken("),
                                                             ("right", "wrong")]
    [group] = read_rows(store, ref, "groups_train")
    assert group["texts"] == ["right", "wrong", "crash", "broken("]
    assert group["scores"] == [1.0, 0.0, -0.5, -1.0]
    assert store.list("make_preferences")[-1]["metrics"]["unjudged"] == 2
    assert ranked_group(judged(read_rows(store, labels, "labels")), 2) == [("right", 1.0), ("wrong", 0.0)]
