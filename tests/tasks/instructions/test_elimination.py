"""WizardMath's elimination rules on hand-written candidates: each fires on its case and not on a good rewrite."""
from __future__ import annotations

import pytest

from tasks.instructions.elimination import FILTERS, Candidate, EliminationConfig, first_failure
from tasks.instructions.evolve import evolution_prompt

PARENT = "Tom has 3 apples and buys 5 more. How many apples does he have?"
GOOD = "Tom has 3 apples and buys 5 more, then gives half of all his apples to Ann. How many apples does Tom keep?"
ANSWER = "He has 3 + 5 = 8 apples and gives away 4, so he keeps 4. The answer is 4."
CFG = EliminationConfig()


def fired(question: str, answer: str | None = None, operation: str = "add_constraints",
          cfg: EliminationConfig = CFG) -> list[str]:
    c = Candidate(question, PARENT, operation, answer)
    return [name for name, f in FILTERS.items() if f.fn(c, cfg)]


def test_a_good_rewrite_with_an_answer_passes_every_filter():
    assert fired(GOOD, ANSWER) == []
    assert first_failure(Candidate(GOOD, PARENT, "add_constraints", ANSWER), CFG, answered=True) is None


def test_a_copy_of_the_source_has_no_information_gain():
    assert fired(PARENT, ANSWER) == ["no_information_gain"]
    assert fired("  tom HAS 3 apples, and buys 5 more how many apples does he have ", ANSWER) == [
        "no_information_gain"]  # case, punctuation and spaces do not make a new question


def test_an_upward_rewrite_that_only_drops_words_gains_nothing_but_an_easier_one_may():
    shorter = "Tom has 3 apples and buys 5 more. How many apples?"
    assert fired(shorter, ANSWER, "add_constraints") == ["no_information_gain"]
    assert fired(shorter, ANSWER, "easier") == []


def test_too_short_counts_words_against_the_configured_minimum():
    assert fired("How many pears?", ANSWER) == ["too_short"]
    assert fired("How many pears?", ANSWER, cfg=EliminationConfig(min_words=3)) == []
    assert fired("", ANSWER)[:1] == ["too_short"]


@pytest.mark.parametrize("question", [
    "#Rewritten Prompt#: Tom has 3 apples and buys 5 more and 2 pears. How many fruits does he have?",
    "Here is the rewritten prompt: Tom has 3 apples, buys 5 more and eats 1. How many are left now?",
    "Given Prompt asks about apples; Tom has 3 apples, buys 5 and eats 1. How many are left?",
])
def test_copies_of_the_evolution_prompt_markers_are_eliminated(question):
    assert "copies_prompt" in fired(question, ANSWER)


def test_copying_the_operation_instruction_text_is_eliminated_even_without_markers():
    copied = "Please add one more constraint or requirement into the question about Tom and his 3 apples."
    assert "copies_prompt" in fired(copied, ANSWER)
    # the same words are fine where the parent itself has them: copying the parent is not copying the prompt
    own = Candidate(copied, copied + " Why?", "add_constraints", ANSWER)
    assert not FILTERS["copies_prompt"].fn(own, CFG)
    assert "add" in evolution_prompt(PARENT, "add_constraints")


@pytest.mark.parametrize("answer", [None, "", "   ", "He buys apples and counts them carefully.",
                                    "Sorry, I cannot solve this problem."])
def test_the_teacher_failing_to_answer_is_eliminated(answer):
    assert fired(GOOD, answer) == ["unanswered"]


@pytest.mark.parametrize("answer", ["3 + 5 = 8\n#### 8", "So he keeps \\boxed{4}.", "The answer is 4."])
def test_any_final_answer_format_counts_as_answered(answer):
    assert fired(GOOD, answer) == []


def test_without_needing_a_final_answer_only_empty_or_apologetic_answers_fail():
    cfg = EliminationConfig(need_final_answer=False)
    assert fired(GOOD, "He buys apples and counts them carefully.", cfg=cfg) == []
    assert fired(GOOD, "", cfg=cfg) == ["unanswered"]
    assert fired(GOOD, "I am sorry, this cannot be answered.", cfg=cfg) == ["unanswered"]


def test_the_first_filter_in_the_configured_order_is_the_reason_and_phases_are_separate():
    both = Candidate("Given prompt?", PARENT, "add_constraints", "")  # too short and a copy, and unanswered
    assert first_failure(both, CFG, answered=False) == "too_short"
    reordered = EliminationConfig(filters=["copies_prompt", "too_short", "unanswered"])
    assert first_failure(both, reordered, answered=False) == "copies_prompt"
    assert first_failure(both, CFG, answered=True) == "unanswered"  # the answer phase runs only answer filters
    assert FILTERS["unanswered"].needs_answer and not FILTERS["too_short"].needs_answer


def test_an_unknown_filter_is_a_config_error():
    with pytest.raises(ValueError, match="known: "):
        EliminationConfig(filters=["too_short", "too_boring"])
