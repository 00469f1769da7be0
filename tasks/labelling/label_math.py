"""Math labellers: chain-of-thought answer checks (RFT, WizardMath), program-of-thought executed in the sandbox
(MAmmoTH), and the hybrid of the two."""
from __future__ import annotations

import re

import pyarrow as pa

from tasks.labelling.answers import (answers_match, calc_path_grounded, extract_answer, extract_calc_path,
                           extract_final_answer, sound_steps)
from tasks.labelling.labellers import LabelOptions, register_labeller, require_field
from tasks.labelling.sandbox import run_sandboxed

_CODE_BLOCK = re.compile(r"```(?:python|py)?[ \t]*\n(.*?)(?:```|$)", re.DOTALL)

# The fields each labeller writes besides the core label columns (tasks/core/records.py LABELS).
ANSWER_FIELDS = {
    "calc_path": pa.list_(pa.string()),  # the `<<...>>` equations, which RFT de-duplicates on
    "reference_calc_path": pa.list_(pa.string()),  # the written solution's path (None without a solution)
    "grounded": pa.bool_(),  # every number in the path comes from the question (None without a question)
}
PROGRAM_FIELDS = {"program_wall_s": pa.float64()}
HYBRID_FIELDS = ANSWER_FIELDS | PROGRAM_FIELDS | {"mode": pa.string()}  # mode: "pot" or "cot"


@register_labeller("math_answer", fields=ANSWER_FIELDS)
def label_math_answer(completion: str, problem: dict, options: LabelOptions) -> dict:
    """Reward 1 when the final answer (`####`, `\\boxed{}` or "The answer is") equals the reference `final`
    (math-verify equivalence), else 0.

    Also records the calculation path (the `<<...>>` equations), which RFT de-duplicates on (Yuan et al. 2023).
    """
    reference = require_field(problem, "final")
    predicted = extract_answer(completion)
    correct = answers_match(predicted, reference)
    path = extract_calc_path(completion)
    # The written solution's path is already in the SFT data: selection counts it as kept (RFT, Sec. 4).
    solution, question = problem.get("answer"), problem.get("question")
    return {"pred": predicted, "correct": correct, "reward": float(correct), "calc_path": list(path),
            "reference_calc_path": list(extract_calc_path(solution)) if isinstance(solution, str) else None,
            "grounded": calc_path_grounded(path, question) if isinstance(question, str) else None,
            "status": "answered" if predicted is not None else "no_answer", "error": None}


@register_labeller("math_answer_sound", fields=ANSWER_FIELDS)
def label_math_answer_sound(completion: str, problem: dict, options: LabelOptions) -> dict:
    """`math_answer`, right only when the answer is reached through sound steps: at least one `<<a op b=c>>`,
    each holding and using only numbers the question states or an earlier step produced. With small answers a
    wrong path often lands on the right number (two thirds of the quickstart base's right answers: docs/online-rl.md);
    reported beside pass@1 (`eval.rescore`), it shows how much of an accuracy is reasoning."""
    label = label_math_answer(completion, problem, options)
    verdicts = sound_steps(label["calc_path"], require_field(problem, "question"))
    sound = label["correct"] and bool(verdicts) and all(verdicts)
    return label | {"correct": sound, "reward": float(sound)}


@register_labeller("calculation_check", fields={"calc_steps": pa.int64(), "calc_sound": pa.int64()}, answers=False)
def label_calculation_check(completion: str, problem: dict, options: LabelOptions) -> dict:
    """A rule-based process reward for annotated solutions (GSM8K's `<<a*b=c>>`): the share of steps whose
    arithmetic holds and whose operands come from the question or an earlier step; 0 without steps.

    A shaping term beside `math_answer` (`combine: weighted_sum`), not a verdict: `correct` is None, so the
    combined `correct` stays the answer's. Padding a wrong solution with sound steps cannot reach the answer's
    reward, and every step is checked from the question's text, which the policy does not write.
    """
    question = require_field(problem, "question")
    verdicts = sound_steps(extract_calc_path(completion), question)
    return {"pred": None, "correct": None, "reward": sum(verdicts) / len(verdicts) if verdicts else 0.0,
            "calc_steps": len(verdicts), "calc_sound": sum(verdicts),
            "status": "answered" if verdicts else "no_answer", "error": None}


def extract_program(completion: str) -> str | None:
    """The Python program in a completion: its fenced code blocks joined, or None when it has none."""
    blocks = _CODE_BLOCK.findall(completion)
    return "\n".join(blocks) if blocks else None


def _printing_program(program: str) -> str:
    # MAmmoTH's programs print their answer; some define `solution()` and leave the call to the harness.
    if "print(" not in program and re.search(r"^def solution\(\s*\)", program, re.MULTILINE):
        return program + "\n\nprint(solution())\n"
    return program


@register_labeller("program_of_thought", fields=PROGRAM_FIELDS, sandboxed=True)
def label_program_of_thought(completion: str, problem: dict, options: LabelOptions) -> dict:
    """Run the completion's program sandboxed (MAmmoTH's PoT); its last printed line is the answer, compared with
    the reference as in `math_answer`. A completion without a code block is taken as the program itself."""
    reference = require_field(problem, "final")
    program = extract_program(completion)
    program = completion if program is None else program
    if not program.strip():
        raise ValueError("empty program")
    result = run_sandboxed(_printing_program(program), options.sandbox)
    lines = [line.strip() for line in result.stdout.splitlines() if line.strip()]
    predicted = lines[-1] if result.ok and lines else None
    correct = answers_match(predicted, reference)
    error = None if result.ok else f"{result.status}: {result.detail}"
    if result.ok and predicted is None:
        error = "the program printed nothing"
    return {"pred": predicted, "correct": correct, "reward": float(correct), "status": result.status,
            "error": error, "program_wall_s": result.wall_s}


@register_labeller("math_hybrid", fields=HYBRID_FIELDS, sandboxed=True)
def label_math_hybrid(completion: str, problem: dict, options: LabelOptions) -> dict:
    """MAmmoTH's hybrid data: a completion with a fenced code block is program-of-thought, one without is
    chain-of-thought. `mode` records which one judged it."""
    if extract_program(completion) is not None and extract_final_answer(completion) is None:
        return label_program_of_thought(completion, problem, options) | {"mode": "pot"}
    return label_math_answer(completion, problem, options) | {"mode": "cot"}
