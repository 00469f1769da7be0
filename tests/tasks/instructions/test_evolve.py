"""Evol-Instruct's operations, prompts, draws and parsing, on hand-written cases."""
from __future__ import annotations

import pytest

from tasks.instructions.evolve import (FRAMES, OPERATIONS, candidate_id, choose_operations, evolution_prompt,
                                       instruction_text, parse_evolved, register_operation)

QUESTION = "Tom has 3 apples and buys 5 more. How many apples does he have?"


def test_the_paper_operations_are_registered_up_and_down():
    assert {name: op.direction for name, op in OPERATIONS.items()} == {
        "add_constraints": "up", "concretize": "up", "deepen": "up", "increase_reasoning": "up",
        "complicate_input": "up", "easier": "down"}


@pytest.mark.parametrize("name", sorted(OPERATIONS))
def test_each_operation_prompt_holds_its_method_and_the_question_before_the_answer_slot(name):
    prompt = evolution_prompt(QUESTION, name)
    assert OPERATIONS[name].method in prompt
    assert prompt.endswith(f"#The Given Prompt#:\n{QUESTION}\n#Rewritten Prompt#:\n")
    assert QUESTION not in instruction_text(name) and OPERATIONS[name].method in instruction_text(name)


def test_upward_and_downward_prompts_ask_for_opposite_things():
    assert "more complex version" in evolution_prompt(QUESTION, "deepen")
    assert "easier version" in evolution_prompt(QUESTION, "easier")
    assert "more complex" not in evolution_prompt(QUESTION, "easier")


def test_a_new_operation_is_one_registration_and_a_bad_direction_is_refused():
    try:
        register_operation("rename_people", "up", "Please change the names of the people.")
        assert "Please change the names" in evolution_prompt(QUESTION, "rename_people")
    finally:
        OPERATIONS.pop("rename_people", None)
    with pytest.raises(ValueError, match="direction"):
        register_operation("sideways", "left", "x")
    assert set(FRAMES) == {"up", "down"}


def test_unknown_operation_names_the_known_ones():
    with pytest.raises(KeyError, match="known: .*add_constraints"):
        evolution_prompt(QUESTION, "make_funnier")


def test_operations_drawn_per_question_are_seeded_and_all_means_all():
    ops = sorted(OPERATIONS)
    one = choose_operations("q1", 1, ops, 1, seed=0)
    assert len(one) == 1 and one == choose_operations("q1", 1, ops, 1, seed=0)
    draws = {choose_operations(f"q{i}", 1, ops, 1, seed=0)[0] for i in range(40)}
    assert len(draws) >= 4  # different questions get different operations
    assert choose_operations("q1", 1, ops, None, seed=0) == ops
    assert sorted(choose_operations("q1", 2, ops, 3, seed=0)) != [] and len(set(choose_operations("q1", 2, ops, 3, 0))) == 3


def test_candidate_ids_carry_the_lineage():
    first = candidate_id("gsm8k-train-00003", 1, "deepen")
    assert first == "gsm8k-train-00003~r1.deepen"
    assert candidate_id(first, 2, "easier") == "gsm8k-train-00003~r1.deepen~r2.easier"


@pytest.mark.parametrize("text, question", [
    ("  Tom has 3 apples and 2 pears. ", "Tom has 3 apples and 2 pears."),
    ("#Rewritten Prompt#:\nTom has 3 apples and 2 pears.", "Tom has 3 apples and 2 pears."),
    ("Rewritten prompt: Tom has 3 apples.", "Tom has 3 apples."),
    ('"Tom has 3 apples."', "Tom has 3 apples."),
    ("Tom has 3 apples.\n#The Given Prompt#:\nTom has 2 apples.", "Tom has 3 apples."),
    ("Tom has 3 apples. The given prompt asked less.", "Tom has 3 apples. The given prompt asked less."),
    ("", ""),
])
def test_parse_evolved_removes_labels_and_later_sections_but_keeps_copied_words(text, question):
    assert parse_evolved(text) == question
