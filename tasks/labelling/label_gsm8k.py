"""GSM8K's two standard scorings (lm-evaluation-harness, `gsm8k` task): *strict* reads the number after the last
`#### ` and nothing else; *flexible* takes the last number anywhere in the completion. Both compare strings
after the harness's clean-up (commas, `$` and a trailing period removed), not by math equivalence, so a score
here is comparable with published GSM8K numbers; `math_answer` (math-verify) is the lenient check."""
from __future__ import annotations

import re

from tasks.labelling.labellers import LabelOptions, register_labeller, require_field

_STRICT = re.compile(r"#### (\-?[0-9\.\,]+)")
_FLEXIBLE = re.compile(r"(-?[$0-9.,]{2,})|(-?[0-9]+)")
_IGNORE = (re.compile(r","), re.compile(r"\$"), re.compile(r"(?s).*#### "), re.compile(r"\.$"))


def clean(answer: str) -> str:
    """The harness's `regexes_to_ignore`, applied in order, then surrounding whitespace stripped."""
    for pattern in _IGNORE:
        answer = pattern.sub("", answer)
    return answer.strip()


def strict_answer(completion: str) -> str | None:
    """The number after the first `#### ` (the harness's strict-match filter takes the first match)."""
    match = _STRICT.search(completion)
    return match.group(1) if match else None


def flexible_answer(completion: str) -> str | None:
    """The last number-like run in the completion (flexible-extract: group_select -1)."""
    matches = _FLEXIBLE.findall(completion)
    if not matches:
        return None
    return next(group for group in matches[-1] if group)


def _label(predicted: str | None, problem: dict) -> dict:
    reference = clean(str(require_field(problem, "final")))
    correct = predicted is not None and clean(predicted) == reference
    return {"pred": predicted, "correct": correct, "reward": float(correct),
            "status": "answered" if predicted is not None else "no_answer", "error": None}


@register_labeller("gsm8k_strict")
def label_gsm8k_strict(completion: str, problem: dict, options: LabelOptions) -> dict:
    return _label(strict_answer(completion), problem)


@register_labeller("gsm8k_flexible")
def label_gsm8k_flexible(completion: str, problem: dict, options: LabelOptions) -> dict:
    return _label(flexible_answer(completion), problem)
