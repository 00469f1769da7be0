"""Pure functions over math answers: final answer (GSM8K `####`, `\\boxed{}`, "The answer is ..."), calculation
path, answer equivalence (math-verify)."""
from __future__ import annotations

import functools
import logging
import re
import threading

from math_verify import parse, verify

from ray_cluster.calculator import calc_result

_FINAL = re.compile(r"####([^\n]*)")
_BOXED_ANY = re.compile(r"\\(?:boxed|fbox)(?:\s*\{|\s+([^\s{}$]+))")
_THE_ANSWER_IS = re.compile(r"[Tt]he (?:final )?answer is:?\s*(.+?)\s*(?:\.\s*)?$", re.MULTILINE)
_CALC = re.compile(r"<<([^<>]*)>>")
_INTEGER = re.compile(r"[+-]?\d+")
_NUMBER = re.compile(r"\d+(?:\.\d+)?")
# Quantities GSM8K-style questions state in words (tiny-arith's "doubles", "triples"; GSM8K's "twice", "half").
_NUMBER_WORDS = {"double": "2", "doubles": "2", "doubled": "2", "twice": "2", "half": "2", "pair": "2",
                 "triple": "3", "triples": "3", "tripled": "3", "thrice": "3", "dozen": "12"}


def extract_final_answer(text: str) -> str | None:
    """The text after the last `####` up to the end of its line, stripped and without commas."""
    matches = _FINAL.findall(text)
    if not matches:
        return None
    return matches[-1].replace(",", "").strip()


def extract_boxed(text: str) -> str | None:
    """The contents of the last `\\boxed{...}` (or `\\fbox{...}`), braces balanced, or of a brace-less
    `\\boxed 2` (MATH writes a few answers so); None when there is none."""
    found = list(_BOXED_ANY.finditer(text))
    if not found:
        return None
    last = found[-1]
    if last.group(1) is not None:  # `\boxed 2`: the one token after it
        return last.group(1)
    depth, start = 1, last.end()
    for index in range(start, len(text)):
        depth += {"{": 1, "}": -1}.get(text[index], 0)
        if depth == 0:
            return text[start:index].strip()
    return None


def extract_answer(text: str) -> str | None:
    """The final answer of a solution in any of the seeds' formats, tried in order: GSM8K's `#### 18`, MATH's
    last `\\boxed{...}`, then a closing "The answer is 18." (MAmmoTH, WizardMath). None when none is found."""
    for extract in (extract_final_answer, extract_boxed, _extract_answer_is):
        found = extract(text)
        if found:
            return found
    return None


def _extract_answer_is(text: str) -> str | None:
    matches = _THE_ANSWER_IS.findall(text)
    return matches[-1].strip().strip("$").strip() if matches else None


def extract_calc_path(text: str) -> tuple[str, ...]:
    """The equations inside `<<...>>` annotations, in order, whitespace removed.

    This is the "calculation path" of Yuan et al. 2023 (RFT): two solutions with the same path count as
    the same reasoning path however their prose differs.
    """
    return tuple(re.sub(r"\s+", "", eq) for eq in _CALC.findall(text))


def _canonical(number: str) -> str:
    return number.rstrip("0").rstrip(".") if "." in number else number


def question_quantities(question: str) -> set[str]:
    """Numbers a question states, in digits or as words ("doubles" → 2), as canonical strings."""
    words = {_NUMBER_WORDS[w] for w in re.findall(r"[a-z]+", question.lower()) if w in _NUMBER_WORDS}
    return {_canonical(n) for n in _NUMBER.findall(question.replace(",", ""))} | words


def calc_path_grounded(path: list[str] | tuple[str, ...], question: str) -> bool:
    """Whether every operand of every `a op b = c` equation is a quantity the question states or the result of
    an earlier equation. A right answer reached through a number from nowhere (`7+2=9` when no 2 was given) is
    a lucky guess, not a reasoning path; with small answers such guesses are common (docs/rft-calibration.md)."""
    return all(grounded_steps(path, question))


def grounded_steps(path: list[str] | tuple[str, ...], question: str) -> list[bool]:
    """Per equation: every operand is a quantity the question states or the result of an earlier equation."""
    known, verdicts = question_quantities(question), []
    for equation in path:
        expr, _, result = equation.rpartition("=")
        verdicts.append(all(_canonical(n) in known for n in _NUMBER.findall(expr)))
        known |= {_canonical(n) for n in _NUMBER.findall(result)}
    return verdicts


def equation_holds(equation: str) -> bool:
    """Whether an `a op b = c` equation's arithmetic is right (the calculator's exact value; never `eval`)."""
    expr, equals, result = equation.rpartition("=")
    value = calc_result(expr) if equals else None
    return value is not None and value == calc_result(result)


def sound_steps(path: list[str] | tuple[str, ...], question: str) -> list[bool]:
    """Per `a op b = c` equation: its arithmetic holds and every operand is a quantity the question states or an
    earlier equation's result. Tiny-arith's 350-step base reaches 90% of its right answers through steps like
    `1+2=4` (docs/online-rl.md), so the final answer alone rewards luck; this is the check of each step."""
    return [equation_holds(eq) and grounded for eq, grounded in zip(path, grounded_steps(path, question))]


def answers_match(predicted: str | None, reference: str) -> bool:
    """Whether `predicted` is mathematically equal to `reference` ("18" vs "18.0", "1/2" vs "0.5",
    "\\frac{1}{2}" vs "0.5", "(x+1)^2" vs "x^2+2x+1"), by math-verify. Identical strings and integers skip it."""
    if predicted is None:
        return False
    predicted, reference = predicted.strip(), reference.strip()
    if _INTEGER.fullmatch(predicted) and _INTEGER.fullmatch(reference):
        return int(predicted) == int(reference)
    if _squash(predicted) == _squash(reference):
        return True
    gold, target = _parse_answer(reference), _parse_answer(predicted)
    if not gold or not target:
        return False
    return bool(verify(list(gold), list(target), timeout_seconds=_timeout()))


def _squash(answer: str) -> str:
    return re.sub(r"\s+|\\!|\\,|\\ ", "", answer).strip("$")


# math-verify's timeouts use signal.alarm, which works only on the main thread: on it (Ray tasks, the label
# stage's forked per-sample children) they are on; elsewhere (thread pools) the label stage's per-sample hard
# bound (tasks/labelling/watchdog.py) is the limit. It warns about the off case on every call.
logging.getLogger("math_verify").setLevel(logging.ERROR)
MATH_VERIFY_TIMEOUT_S = 5


def _timeout() -> int | None:
    return MATH_VERIFY_TIMEOUT_S if threading.current_thread() is threading.main_thread() else None


@functools.lru_cache(maxsize=4096)
def _parse_answer(answer: str) -> tuple:
    """A bare answer string parsed by math-verify, as LaTeX (inside $...$) first, then as a plain expression.
    Cached: a reference is compared with every sample of its problem."""
    latex = answer if answer.startswith("$") else f"${answer}$"
    return tuple(parse(latex, parsing_timeout=_timeout()) or parse(answer, parsing_timeout=_timeout()))
