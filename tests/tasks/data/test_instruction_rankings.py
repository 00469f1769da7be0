"""The IRM's constructed rankings (tasks/data/instruction_rankings.py): well-posed > missing a quantity >
contradictory, for tiny-arith's and GSM8K's phrasing."""
import random

from tasks.data.instruction_rankings import contradictory, missing_quantity, ranked_variants, ranking_tables

TINY = "Tom has 5 apples. He buys 3 more. How many apples does Tom have now?"
GSM = ("Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. How many "
       "clips did Natalia sell altogether in April and May?")


def test_a_missing_quantity_removes_the_first_stated_number():
    assert missing_quantity(TINY, random.Random(0)) == "Tom has some apples. He buys 3 more. How many apples does " \
                                                       "Tom have now?"
    assert missing_quantity(GSM, random.Random(0)).startswith("Natalia sold clips to some of her friends")


def test_a_contradiction_restates_the_first_numeric_sentence_with_another_number():
    out = contradictory(TINY, random.Random(0))
    first, second = out.split(". ")[:2]
    assert first == "Tom has 5 apples" and second.startswith("Tom has ") and second != "Tom has 5 apples"
    assert out.endswith("He buys 3 more. How many apples does Tom have now?")


def test_groups_are_ranked_best_first_and_pairs_are_their_three_comparisons():
    rows = [{"id": "a", "question": TINY}, {"id": "b", "question": "How many apples are there?"}]
    groups, pairs = ranking_tables(rows, random.Random(0))
    assert [g["prompt_id"] for g in groups] == ["a"]  # no number: nothing to vary, skipped
    [group] = groups
    assert group["texts"] == ranked_variants(TINY, random.Random(0)) and group["scores"] == [2.0, 1.0, 0.0]
    texts = group["texts"]
    assert [(p["chosen"], p["rejected"]) for p in pairs] == [(texts[0], texts[1]), (texts[1], texts[2]),
                                                              (texts[0], texts[2])]
