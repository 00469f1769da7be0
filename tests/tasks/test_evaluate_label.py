import pytest

from tasks.evaluate import majority_vote_correct, score, wilson_ci95
from tasks.label import LABELLERS, label_math_answer


def test_wilson_interval_hand_computed():
    lo, hi = wilson_ci95(50, 100)
    assert lo == pytest.approx(0.4038, abs=1e-4) and hi == pytest.approx(0.5962, abs=1e-4)
    assert wilson_ci95(0, 10)[0] == 0.0 and wilson_ci95(0, 10)[1] == pytest.approx(0.2775, abs=1e-4)
    assert wilson_ci95(0, 0) == (0.0, 0.0)


def _s(idx, pred, correct):
    return {"prompt_id": "p", "sample_index": idx, "pred": pred, "correct": correct}


def test_majority_vote_counts_answers_and_ignores_unanswered():
    assert majority_vote_correct([_s(0, "3", False), _s(1, "4", True), _s(2, "4", True), _s(3, None, False)])
    assert not majority_vote_correct([_s(0, "3", False), _s(1, "3", False), _s(2, "4", True)])
    assert not majority_vote_correct([_s(0, None, False)])
    # a tie goes to the answer that appeared first
    assert not majority_vote_correct([_s(0, "3", False), _s(1, "4", True), _s(2, "3", False), _s(3, "4", True)])


def test_score_pass_at_1_uses_first_sample_per_problem():
    rows = [{"prompt_id": "a", "sample_index": 0, "correct": True, "pred": "1"},
            {"prompt_id": "b", "sample_index": 0, "correct": False, "pred": "2"},
            {"prompt_id": "c", "sample_index": 0, "correct": True, "pred": "3"},
            {"prompt_id": "d", "sample_index": 0, "correct": True, "pred": "4"}]
    summary, per_problem = score(rows, "pass@1")
    assert summary["accuracy"] == 0.75 and summary["n"] == 4 and len(per_problem) == 4
    assert summary["ci95"] == list(wilson_ci95(3, 4))


def test_math_answer_labeller_on_gsm8k_text():
    problem = {"final": "17"}
    good = " She buys 3*4 = <<3*4=12>>12.\nShe has 12+5 = <<12+5=17>>17.\n#### 17"
    label = label_math_answer(good, problem)
    assert label == {"pred": "17", "correct": True, "reward": 1.0, "calc_path": ["3*4=12", "12+5=17"],
                     "reference_calc_path": None, "grounded": None}
    full = {"final": "17", "answer": "4*3 = <<4*3=12>>12\n#### 17", "question": "3 bags of 4, and 5 more?"}
    with_solution = label_math_answer(good, full)
    assert with_solution["reference_calc_path"] == ["4*3=12"] and with_solution["grounded"] is True
    assert label_math_answer(good, full | {"question": "3 bags of 4, and 6 more?"})["grounded"] is False
    wrong = label_math_answer(" 3*4 = <<3*4=11>>11\n#### 16", problem)
    assert wrong["correct"] is False and wrong["reward"] == 0.0 and wrong["calc_path"] == ["3*4=11"]
    assert label_math_answer(" no answer here", problem)["pred"] is None
    assert "math_answer" in LABELLERS
