import pytest

from tasks.labelling.answers import answers_match, extract_calc_path, extract_final_answer


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("He has 3+4 = <<3+4=7>>7.\n#### 7", "7"),
        ("#### 1,234", "1234"),
        ("#### 18 apples\nThe end.", "18 apples"),
        ("first #### 3\nthen #### 42  ", "42"),
        ("####   -5 \nmore text", "-5"),
        ("no final answer here", None),
        ("####", ""),
    ],
)
def test_extract_final_answer(text, expected):
    assert extract_final_answer(text) == expected


def test_extract_calc_path():
    text = "a 3*4 = <<3*4=12>>12\nb <<12+5=17>>17\n#### 17"
    assert extract_calc_path(text) == ("3*4=12", "12+5=17")
    assert extract_calc_path("x << 3 * 4 = 12 >>12") == ("3*4=12",)
    assert extract_calc_path("#### 5") == ()


@pytest.mark.parametrize(
    ("predicted", "reference", "expected"),
    [
        ("18", "18", True),
        ("18", "18.0", True),
        ("1/2", "0.5", True),
        ("1000", "1,000", True),
        ("-3", "-3", True),
        ("17", "18", False),
        (None, "18", False),
        ("", "18", False),
        ("banana", "18", False),
    ],
)
def test_answers_match(predicted, reference, expected):
    assert answers_match(predicted, reference) is expected


def test_answers_match_works_off_main_thread():
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=1) as pool:
        assert pool.submit(answers_match, "0.5", "1/2").result() is True


def test_calc_path_grounded_needs_every_operand_stated_or_computed():
    from tasks.labelling.answers import calc_path_grounded, question_quantities

    question = ("Sara has 7 cookies. She buys 3 boxes with 3 cookies in each box. She doubles them. "
                "Ann has 1.50 dollars.")
    assert question_quantities(question) == {"7", "3", "2", "1.5"}
    assert calc_path_grounded(["3*3=9", "7+9=16", "16*2=32"], question)
    assert calc_path_grounded(["3*3=9", "7+2=9"], question)  # 2 is stated, as "doubles"
    assert not calc_path_grounded(["3*3=9", "7+2=9"], question.replace(" She doubles them.", ""))
    assert not calc_path_grounded(["3*3=9", "9+19=28"], question)  # 19 comes from nowhere
    assert not calc_path_grounded(["5+3=8"], question)
    assert calc_path_grounded([], question)


@pytest.mark.parametrize("text, expected", [
    (r"so $\boxed{\frac{1}{2}}$.", r"\frac{1}{2}"),
    (r"first \boxed{1}, then \fbox{x^{2}}", "x^{2}"),
    (r"our answer is $\boxed 2$.", "2"),  # MATH train writes a few answers without braces
    (r"\boxed{unbalanced", None),
    ("no box", None),
])
def test_extract_boxed(text, expected):
    from tasks.labelling.answers import extract_boxed

    assert extract_boxed(text) == expected


def test_sound_steps_checks_each_equations_arithmetic_and_its_operands():
    from tasks.labelling.answers import sound_steps

    question = "Ann has 1 apple. She buys 5 more. She buys 5 bags with 8 apples in each bag."
    assert sound_steps(["1+5=6", "5*8=40", "6+40=46"], question) == [True, True, True]
    # wrong arithmetic; then a right sum over the wrong result (its operands were produced, so it is sound)
    assert sound_steps(["1+5=7", "7+40=47"], question) == [False, False]  # 40 was never produced
    assert sound_steps(["1+5=7", "7*8=56"], question) == [False, True]
    assert sound_steps(["4*8=32"], question) == [False]  # 4 comes from nowhere, though 4*8=32 holds
    assert sound_steps(["1+5=6.0", "6/4=1.5"], question.replace("5 bags", "4 bags")) == [True, True]
    assert sound_steps(["1+5", "import os=0", "1+5=six"], question) == [False, False, False]
    assert sound_steps([], question) == []
