"""Steps of a solution (tasks/labelling/steps.py) and the exact truth of each tiny-arith step
(tasks/data/tiny_arith_steps.py) that Math-Shepherd's labels and the PRM are checked against."""
import random

import pytest
from pydantic import ValidationError

from tasks.data.tiny_arith import TinyArithSpec, generate_problem_states, write_solution
from tasks.data.tiny_arith_steps import canonical, step_truth, valid_paths
from tasks.labelling.steps import StepSplitConfig, split_steps


def test_lines_are_steps_and_the_steps_rebuild_the_text():
    text = " Adding gives 3+4 = <<3+4=7>>7.\n\nTaking away leaves 7-2 = <<7-2=5>>5.\n#### 5"
    steps = split_steps(text)
    assert steps == [" Adding gives 3+4 = <<3+4=7>>7.\n\n", "Taking away leaves 7-2 = <<7-2=5>>5.\n", "#### 5"]
    assert "".join(steps) == text


def test_regex_mode_and_max_steps_keep_every_character():
    text = "First.\n\nSecond.\n\nThird.\n\nFourth."
    steps = split_steps(text, StepSplitConfig(mode="regex", pattern=r"\n\n", max_steps=3))
    assert steps == ["First.\n\n", "Second.\n\n", "Third.\n\nFourth."] and "".join(steps) == text
    sentences = split_steps("A is 2. B is 3. So 5.", StepSplitConfig(mode="regex", pattern=r"\.\s+"))
    assert sentences == ["A is 2. ", "B is 3. ", "So 5."]
    assert split_steps("") == []


def test_a_bad_pattern_names_itself():
    with pytest.raises(ValidationError, match="pattern '\\(' is not a regular expression"):
        StepSplitConfig(mode="regex", pattern="(")


@pytest.fixture(scope="module")
def problem():
    train, _ = generate_problem_states(TinyArithSpec(seed=3, n_train=40, n_test=0, min_steps=3, max_steps=3,
                                                     distractor_prob=0.0))
    return next(p for p in train if {e.kind for e in p.events} <= {"add", "sub"})


def test_every_written_solution_is_correct_at_every_step(problem):
    paths = valid_paths(problem)
    for seed in range(20):
        steps = split_steps(" " + write_solution(problem, random.Random(seed), 1.0))
        assert step_truth(problem, steps, paths) == [True] * len(steps)


def test_a_wrong_calculation_fails_its_step_and_every_later_one(problem):
    steps = split_steps(" " + write_solution(problem, random.Random(0), 0.0))
    first = steps[0]
    a = first.split("<<")[1].split(">>")[0]  # e.g. 5+3=8
    expr, result = a.rsplit("=", 1)
    wrong = first.replace(f"<<{a}>>{result}", f"<<{expr}={int(result) + 1}>>{int(result) + 1}")
    assert step_truth(problem, [wrong] + steps[1:]) == [False] * len(steps)
    # a copying error: the right annotation, another number written after it
    copied = first.replace(f">>{result}", f">>{int(result) + 1}")
    assert step_truth(problem, [copied] + steps[1:])[0] is False
    # a sentence's full stop after the number is not part of it (a model writes "12.." too)
    assert step_truth(problem, [first.rstrip("\n") + ".\n"] + steps[1:]) == [True] * len(steps)
    # the right path but the wrong final answer: only the last step is wrong
    last = steps[-1].replace(f"#### {problem.final}", f"#### {problem.final + 1}")
    assert step_truth(problem, steps[:-1] + [last]) == [True] * (len(steps) - 1) + [False]


def test_commuted_operands_are_one_calculation():
    assert canonical("4+3=7") == canonical("3+4=7") == "3+4=7"
    assert canonical("9-4=5") == "9-4=5" and canonical("12/3=4") == "12/3=4"
