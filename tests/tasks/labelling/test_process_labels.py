"""Math-Shepherd's labelling (tasks/labelling/process_labels.py): which solutions are labelled, the prompts of
their step prefixes, and hard / soft labels from the completions' verdicts."""
import pytest

from tasks.labelling.process_labels import (ProcessLabelConfig, pick_solutions, step_id, step_labels,
                                            step_prompt_rows)
from tasks.selection.preferences import heldout

PROBLEM = {"id": "p1", "prompt": "Question: Tom has 3 apples. He buys 4.\nAnswer:", "question": "Tom has 3 ...",
           "answer": "3+4 = <<3+4=7>>7\n#### 7", "final": "7"}
TEXT = " Adding gives 3+4 = <<3+4=7>>7.\nDoubling gives 7*2 = <<7*2=14>>14.\n#### 14"


def _label(index: int, text: str, correct: bool, prompt_id: str = "p1") -> dict:
    return {"prompt_id": prompt_id, "sample_index": index, "text": text, "correct": correct}


def test_the_first_distinct_solutions_of_each_problem_are_picked():
    rows = [_label(2, "b", False), _label(0, "a", True), _label(1, "a", False), _label(3, "c", False),
            _label(0, " ", False, "p2"), _label(1, "d", True, "p2")]
    picked = pick_solutions(rows, per_problem=2)
    assert [(r["prompt_id"], r["sample_index"]) for r in picked] == [("p1", 0), ("p1", 2), ("p2", 1)]


def test_every_step_but_the_last_gets_a_prompt_that_continues_the_solution():
    solutions, prompts = step_prompt_rows([_label(5, TEXT, False)], {"p1": PROBLEM}, ProcessLabelConfig())
    assert solutions[0]["steps"][0] == " Adding gives 3+4 = <<3+4=7>>7.\n" and len(solutions[0]["steps"]) == 3
    assert [p["id"] for p in prompts] == [step_id("p1", 5, 1), step_id("p1", 5, 2)] == ["p1#5#1", "p1#5#2"]
    assert prompts[0]["prompt"] == PROBLEM["prompt"] + " Adding gives 3+4 = <<3+4=7>>7.\n"
    assert prompts[1]["prompt"].endswith("<<7*2=14>>14.\n") and prompts[1]["final"] == "7"  # the problem's answer


def test_a_chat_templated_or_unknown_problem_is_refused_by_name():
    with pytest.raises(ValueError, match="problem 'p1': process labels continue .* chat_template off"):
        step_prompt_rows([_label(0, TEXT, False)], {"p1": PROBLEM | {"chat_template": True}}, ProcessLabelConfig())
    with pytest.raises(ValueError, match="labels row 'p9'/0: not among the 'train' problems"):
        step_prompt_rows([_label(0, TEXT, False, "p9")], {"p1": PROBLEM}, ProcessLabelConfig())


def test_hard_is_any_completion_correct_soft_the_share_and_the_last_step_is_the_solutions_verdict():
    solutions, _ = step_prompt_rows([_label(0, TEXT, False)], {"p1": PROBLEM}, ProcessLabelConfig())
    verdicts = [{"prompt_id": "p1#0#1", "correct": c} for c in (True, False, False, True)] + [
        {"prompt_id": "p1#0#2", "correct": False}] * 4
    [row] = step_labels(solutions, verdicts)
    assert row["hard"] == [1.0, 0.0, 0.0] and row["soft"] == [0.5, 0.0, 0.0]
    with pytest.raises(ValueError, match="solution p1/0 step 1: no completion was labelled for its prefix"):
        step_labels(solutions, verdicts[:4])


def test_the_held_out_split_is_a_pure_function_of_the_problem_id():
    ids = [f"train-{i:06d}" for i in range(2000)]
    share = sum(heldout(i, 0.1, 0) for i in ids) / len(ids)
    assert 0.07 < share < 0.13 and [heldout(i, 0.1, 0) for i in ids[:50]] == [heldout(i, 0.1, 0) for i in ids[:50]]
    assert not any(heldout(i, 0.0, 0) for i in ids)
