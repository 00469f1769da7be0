"""Unit-test labeller (Codex / HumanEval, PanGu-Coder2's RRTF): run a completion against its problem's tests in
the sandbox and record pass / fail / timeout / error with the error text."""
from __future__ import annotations

import pyarrow as pa

from tasks.labelling.label_math import extract_program
from tasks.labelling.labellers import LabelOptions, register_labeller, require_field
from tasks.labelling.sandbox import run_sandboxed

# How a sandbox outcome reads as a test result. An assertion failing is a wrong answer ("fail"); anything else
# that stops the program early is an "error" (syntax, exception, sys.exit), as in RRTF's ranking.
_TEST_STATUS = {"ok": "pass", "timeout": "timeout", "memory": "error", "output_limit": "error", "killed": "error",
                "exited": "error", "error": "error", "sandbox_error": "sandbox_error"}


def unit_test_program(completion: str, problem: dict) -> str:
    """HumanEval's harness: the code prompt + completion, then the tests, then `check(entry_point)`. A completion
    that restates the whole function works too (it redefines the prompt's docstring-only function), and so does
    a chat model's fenced code block. The code prompt is the problem's `question` where the prompt was rendered
    from it (a template or k-shot examples around the code), else the prompt itself."""
    code_prompt = problem.get("question") or require_field(problem, "prompt")
    tests = require_field(problem, "test")
    entry_point = require_field(problem, "entry_point")
    if not completion.strip():
        raise ValueError("empty program")
    fenced = extract_program(completion)
    body = completion if fenced is None else f"\n{fenced}"
    return f"{code_prompt}{body}\n\n{tests}\n\ncheck({entry_point})\n"


# besides the core label columns (`status`: pass / fail / timeout / error, `error`: what the sandbox reported)
UNIT_TEST_FIELDS = {"program_wall_s": pa.float64()}


@register_labeller("unit_tests", fields=UNIT_TEST_FIELDS, sandboxed=True)
def label_unit_tests(completion: str, problem: dict, options: LabelOptions) -> dict:
    """Reward 1 when every test passes, else 0; `status` is pass / fail / timeout / error."""
    result = run_sandboxed(unit_test_program(completion, problem), options.sandbox)
    status = _TEST_STATUS[result.status]
    if result.status == "error" and "AssertionError" in result.detail:
        status = "fail"
    passed = status == "pass"
    error = None if passed else f"{result.status}: {result.detail}"
    return {"pred": None, "correct": passed, "reward": float(passed), "status": status, "error": error,
            "program_wall_s": result.wall_s}
