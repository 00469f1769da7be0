"""The ground truth of every step of a tiny-arith solution, which real datasets do not have: the task's
arithmetic is known, so the valid calculation paths of a problem can be enumerated, and a step is correct iff
the calculations written so far are a prefix of one of them (an error anywhere before makes every later step
wrong, as in PRM800K's first-error labelling). Used to check Math-Shepherd's automatic labels and the PRM
(issue 17: ≥ 90% agreement)."""
from __future__ import annotations

import random
import re

from tasks.data.tiny_arith import Problem, write_solution
from tasks.labelling.answers import answers_match, extract_calc_path, extract_final_answer

_EQUATION = re.compile(r"^(-?\d+)([+\-*/])(-?\d+)=(-?\d+)$")
# an annotation and the number written after it: `<<3*4=12>>12`; a different number there is a copying error
_SHOWN = re.compile(r"<<[^<>]*=\s*(-?\d+(?:\.\d+)?)\s*>>\s*(-?\d+(?:\.\d+)?)")


def canonical(equation: str) -> str:
    """`a op b=c` with the operands of + and * in order (3+4 and 4+3 are one calculation); anything else as is."""
    match = _EQUATION.match(equation)
    if not match:
        return equation
    a, op, b, c = match.groups()
    if op in "+*" and int(b) < int(a):
        a, b = b, a
    return f"{a}{op}{b}={c}"


def valid_paths(problem: Problem, draws: int = 400, seed: int = 0) -> set[tuple[str, ...]]:
    """The problem's valid calculation paths (canonical), from `draws` solutions written with every choice of
    order and grouping open (tasks/data/tiny_arith.py); with 2-5 events this finds all of them in practice."""
    rng = random.Random(seed)
    return {tuple(canonical(e) for e in extract_calc_path(write_solution(problem, rng, 1.0))) for _ in range(draws)}


def step_truth(problem: Problem, steps: list[str], paths: set[tuple[str, ...]] | None = None) -> list[bool]:
    """Per step: every calculation so far lies on a valid path, and a step stating the final answer states the
    right one; the number written after an annotation is its result. A step without a calculation inherits the verdict of the steps before it."""
    paths = valid_paths(problem) if paths is None else paths
    prefixes = {path[:k] for path in paths for k in range(len(path) + 1)}
    written: tuple[str, ...] = ()
    ok, truth = True, []
    for step in steps:
        written += tuple(canonical(e) for e in extract_calc_path(step))
        ok = ok and written in prefixes and all(float(a) == float(b) for a, b in _SHOWN.findall(step))
        answer = extract_final_answer(step)
        if answer is not None:
            ok = ok and answers_match(answer, str(problem.final))
        truth.append(ok)
    return truth
