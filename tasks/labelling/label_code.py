"""Unit-test labeller (Codex / HumanEval, PanGu-Coder2's RRTF): run a completion against its problem's tests in
the sandbox and record pass / fail / timeout / error with the error text."""
from __future__ import annotations

import pyarrow as pa

from tasks.labelling.label_math import extract_program
from tasks.labelling.labellers import LabelOptions, register_labeller, require_field
from tasks.labelling.verdicts import run_unit_tests

# How a sandbox outcome reads as a test result. An assertion failing is a wrong answer ("fail"); anything else
# that stops the program early is an "error" (syntax, exception, sys.exit), as in RRTF's ranking.
_TEST_STATUS = {"ok": "pass", "pass": "pass", "fail": "fail", "timeout": "timeout", "memory": "error", "output_limit": "error", "killed": "error",
                "exited": "error", "error": "error", "sandbox_error": "sandbox_error"}


def program_parts(completion: str, problem: dict) -> tuple[str, str, str, str]:
    """(code prompt, the completion's code, tests, entry point). The code prompt is the problem's `question`
    where the prompt was rendered from it (a template or k-shot examples around the code), else the prompt; a
    chat model's fenced block is its code (restating the whole function works: it redefines the prompt's
    docstring-only one)."""
    code_prompt = problem.get("question") or require_field(problem, "prompt")
    tests = require_field(problem, "test")
    entry_point = require_field(problem, "entry_point")
    if not completion.strip():
        raise ValueError("empty program")
    fenced = extract_program(completion)
    return code_prompt, completion if fenced is None else f"\n{fenced}", tests, entry_point


def unit_test_program(completion: str, problem: dict) -> str:
    """HumanEval's own harness as one program: prompt + completion, the tests, `check(entry_point)`. Used to
    measure the exec floor (benchmarks/labeling.py); verdicts come from `run_unit_tests`, which never runs the
    tests in the program's interpreter."""
    code_prompt, code, tests, entry_point = program_parts(completion, problem)
    return f"{code_prompt}{code}\n\n{tests}\n\ncheck({entry_point})\n"


# besides the core label columns (`status`: pass / fail / timeout / error, `error`: what the sandbox reported)
UNIT_TEST_FIELDS = {"program_wall_s": pa.float64()}


@register_labeller("unit_tests", fields=UNIT_TEST_FIELDS, sandboxed=True, answers=False)
def label_unit_tests(completion: str, problem: dict, options: LabelOptions) -> dict:
    """Reward 1 when every test passes, else 0; `status` is pass / fail / timeout / error. The function runs in
    the sandbox, the tests here on its plain-data results (tasks/labelling/verdicts.py)."""
    return _unit_test_label(completion, problem, options)[0]


def _unit_test_label(completion: str, problem: dict, options: LabelOptions) -> tuple[dict, str]:
    """(the `unit_tests` label, the sandbox's own detail: what the graded labeller reads the outcome from)."""
    code_prompt, code, tests, entry_point = program_parts(completion, problem)
    verdict = run_unit_tests(code_prompt, code, tests, entry_point, options.sandbox)
    status = _TEST_STATUS.get(verdict.status, verdict.status)
    passed = status == "pass"
    return {"pred": None, "correct": passed, "reward": float(passed), "status": status,
            "error": None if passed else f"{verdict.status}: {verdict.detail}", "program_wall_s": verdict.wall_s
            }, verdict.detail


# PanGu-Coder2 ranks a problem's programs by how far each got: compile error < runtime error < failing test < pass.
# Only the order matters to RRTF's ranking loss; `correct` (pass@k) stays "every test passes".
OUTCOME_REWARD = {"compile_error": -1.0, "runtime_error": -0.5, "fail": 0.0, "pass": 1.0, "unjudged": 0.0}
_COMPILE_ERRORS = ("SyntaxError", "IndentationError", "TabError")


def unit_test_outcome(status: str, detail: str) -> str:
    """The RRTF outcome of a unit-test status and the sandbox's detail: a program Python could not compile is a
    compile error; any other early stop (an exception, a timeout, a limit) a runtime error."""
    if status in ("pass", "fail"):
        return status
    if status == "sandbox_error":  # the sandbox failed, not the program: no verdict (ranked groups skip it)
        return "unjudged"
    return "compile_error" if detail.startswith(_COMPILE_ERRORS) else "runtime_error"


@register_labeller("unit_tests_graded", fields=UNIT_TEST_FIELDS | {"outcome": pa.string()}, sandboxed=True,
                   answers=False)
def label_unit_tests_graded(completion: str, problem: dict, options: LabelOptions) -> dict:
    """`unit_tests` with RRTF's four-level reward (OUTCOME_REWARD), so a ranked group orders its failing programs
    too: one that runs and answers wrongly above one that crashes, above one that does not compile."""
    row, detail = _unit_test_label(completion, problem, options)
    outcome = unit_test_outcome(row["status"], detail)
    return row | {"reward": OUTCOME_REWARD[outcome], "outcome": outcome}
