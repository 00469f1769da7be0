"""Pure functions over GSM8K-format answers: final answer, calculation path, answer equivalence."""
from __future__ import annotations

import re

from math_verify import parse, verify

_FINAL = re.compile(r"####([^\n]*)")
_CALC = re.compile(r"<<([^<>]*)>>")
_INTEGER = re.compile(r"[+-]?\d+")


def extract_final_answer(text: str) -> str | None:
    """The text after the last `####` up to the end of its line, stripped and without commas."""
    matches = _FINAL.findall(text)
    if not matches:
        return None
    return matches[-1].replace(",", "").strip()


def extract_calc_path(text: str) -> tuple[str, ...]:
    """The equations inside `<<...>>` annotations, in order, whitespace removed.

    This is the "calculation path" of Yuan et al. 2023 (RFT): two solutions with the same path count as
    the same reasoning path however their prose differs.
    """
    return tuple(re.sub(r"\s+", "", eq) for eq in _CALC.findall(text))


def answers_match(predicted: str | None, reference: str) -> bool:
    """Whether `predicted` is mathematically equal to `reference` ("18" vs "18.0", "1/2" vs "0.5")."""
    if predicted is None:
        return False
    predicted, reference = predicted.strip(), reference.strip()
    if _INTEGER.fullmatch(predicted) and _INTEGER.fullmatch(reference):
        return int(predicted) == int(reference)
    # Timeouts off: math-verify implements them with signal.alarm, which fails outside the main thread
    # (Ray actors, thread pools).
    gold = parse(reference, parsing_timeout=None)
    target = parse(predicted, parsing_timeout=None)
    if not gold or not target:
        return False
    return bool(verify(gold, target, timeout_seconds=None))
