"""Best-of-N by several verifiers on the same samples (tasks/evaluation/rerank.py `curves` with ways)."""
from tasks.evaluation.rerank import best_of_n, curves
from tasks.evaluation.verifiers import WAYS


def _s(i: int, correct: bool, pred: str, prm: float, orm: float) -> dict:
    return {"sample_index": i, "correct": correct, "pred": pred, "prm_score": prm, "orm_score": orm}


def test_each_verifier_picks_its_own_top_sample():
    samples = [_s(0, False, "5", 0.2, 0.9), _s(1, True, "7", 0.8, 0.1), _s(2, False, "5", 0.1, 0.3),
               _s(3, False, "5", 0.9, 0.0)]
    assert best_of_n(samples, 1, WAYS) == {"prm": False, "orm": False, "maj": False, "oracle": False}
    assert best_of_n(samples, 2, WAYS) == {"prm": True, "orm": False, "maj": False, "oracle": True}
    # at 4 the PRM's top is sample 3 (wrong); the majority answer 5 is wrong; any correct still holds
    assert best_of_n(samples, 4, WAYS) == {"prm": False, "orm": False, "maj": False, "oracle": True}


def test_curves_count_every_problem_with_intervals():
    by_prompt = {"a": [_s(0, False, "1", 0.1, 0.9), _s(1, True, "2", 0.9, 0.1)],
                 "b": [_s(0, True, "3", 0.6, 0.6), _s(1, True, "3", 0.4, 0.2)]}
    [one, two] = curves(by_prompt, [1, 2], WAYS)
    assert (one["prm"], one["orm"], one["oracle"]) == (0.5, 0.5, 0.5)
    assert (two["prm"], two["orm"], two["maj"], two["oracle"]) == (1.0, 0.5, 0.5, 1.0)
    assert two["prm_ci95"][0] < 1.0 == two["prm_ci95"][1]
