"""GSM8K strict and flexible scoring, as lm-evaluation-harness defines them, against hand-worked completions."""
from __future__ import annotations

import pytest

from tasks.labelling.label_gsm8k import clean, flexible_answer, label_gsm8k_flexible, label_gsm8k_strict, strict_answer
from tasks.labelling.labellers import LabelOptions

PROBLEM = {"final": "1,200"}  # GSM8K writes some references with a thousands separator


@pytest.mark.parametrize("completion, strict, flexible", [
    ("She has 3+4=7 apples.\n#### 7", "7", "7"),
    ("So the total is $1,200.", None, "$1,200."),
    ("#### 18\nWait, it is 20.", "18", "20."),  # strict: the first `#### `; flexible: the last number
    ("#### -3.5 dollars", "-3.5", "-3.5"),
    ("no digits here", None, None),
    ("####18", None, "18"),  # strict needs the space the dataset writes
])
def test_extraction(completion, strict, flexible):
    assert strict_answer(completion) == strict and flexible_answer(completion) == flexible


def test_clean_follows_the_harness():
    assert clean("$1,200.") == "1200" and clean("The answer #### 42") == "42" and clean("3.50") == "3.50"


def test_labels_compare_cleaned_strings_not_math_equivalence():
    options = LabelOptions()
    assert label_gsm8k_flexible("It costs $1,200.", PROBLEM, options)["correct"]
    assert not label_gsm8k_strict("It costs $1,200.", PROBLEM, options)["correct"]
    assert label_gsm8k_strict("... #### 1200", PROBLEM, options)["reward"] == 1.0
    # 1200.0 is the same number but not the same string: strict scoring does not count it
    assert not label_gsm8k_strict("#### 1200.0", PROBLEM, options)["correct"]
    assert label_gsm8k_strict("nothing", PROBLEM, options)["status"] == "no_answer"
