"""WizardMath's elimination rules for evolved questions (Luo et al. 2023, after WizardLM's Elimination Evolving):
an evolution fails when it adds nothing to its parent, when it copies the evolution prompt's wording, when it is
too short to be a question, or when the teacher cannot answer it (no final answer, an empty answer, or a short
apology). Each rule is a registered pure filter `fn(candidate, cfg) -> bool` (True: eliminate); the first in the
configured order that fires is recorded as the candidate's reason, so the report counts each rule."""
from __future__ import annotations

import re
import string
from dataclasses import dataclass
from typing import Callable

from pydantic import BaseModel, ConfigDict, Field, field_validator

from models.registry import Registry
from tasks.instructions.evolve import OPERATIONS, instruction_text
from tasks.labelling.answers import extract_answer


@dataclass(frozen=True)
class Candidate:
    question: str  # the evolved question, parsed out of the teacher's text
    parent_question: str
    operation: str
    answer: str | None = None  # the teacher's answer; None until it has answered


@dataclass(frozen=True)
class EliminationFilter:
    name: str
    fn: Callable[[Candidate, "EliminationConfig"], bool]
    needs_answer: bool  # runs after the teacher answered the survivors of the question filters


FILTERS = Registry("elimination filter")


def register_filter(name: str, needs_answer: bool = False):
    def wrap(fn):
        FILTERS[name] = EliminationFilter(name, fn, needs_answer)
        return fn
    return wrap


MARKERS = ["#rewritten prompt#", "#the given prompt#", "given prompt", "rewritten prompt", "prompt rewriter"]


class EliminationConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    filters: list[str] = Field(default_factory=lambda: ["too_short", "copies_prompt", "no_information_gain",
                                                        "unanswered"],
                               description="applied in this order; the first that fires is the reason")
    min_words: int = Field(default=8, ge=1, description="too_short: fewer words than this")
    markers: list[str] = Field(default_factory=lambda: list(MARKERS), description="copies_prompt: phrases of the "
                               "evolution prompt a question must not contain (case-insensitive)")
    copy_ngram: int = Field(default=6, ge=3, description="copies_prompt: a run of this many words of the "
                            "operation's instruction that is in the question but not in its parent")
    need_final_answer: bool = Field(default=True, description="unanswered: the answer must state a final answer "
                                    "(#### x, \\boxed{x}, 'The answer is x')")
    refusal_words: int = Field(default=80, description="unanswered: an answer saying 'sorry' under this many "
                               "words is a refusal (WizardLM)")

    @field_validator("filters")
    @classmethod
    def _known(cls, names: list[str]) -> list[str]:
        for name in names:
            FILTERS.lookup(name)
        return names


def words(text: str) -> list[str]:
    """Lower-case words without punctuation: what "the same question" means to these rules."""
    return text.lower().translate(str.maketrans({c: " " for c in string.punctuation})).split()


@register_filter("too_short")
def too_short(c: Candidate, cfg: EliminationConfig) -> bool:
    return len(words(c.question)) < cfg.min_words


@register_filter("copies_prompt")
def copies_prompt(c: Candidate, cfg: EliminationConfig) -> bool:
    """The rewrite repeats the rewriting instruction instead of (or besides) a question."""
    lowered = c.question.lower()
    if any(marker.lower() in lowered for marker in cfg.markers):
        return True
    own = _ngrams(words(c.question), cfg.copy_ngram)
    return bool(own & (_ngrams(words(instruction_text(c.operation)), cfg.copy_ngram)
                       - _ngrams(words(c.parent_question), cfg.copy_ngram)))


@register_filter("no_information_gain")
def no_information_gain(c: Candidate, cfg: EliminationConfig) -> bool:
    """The same question after normalisation; or a harder-making rewrite that adds no word its parent lacks."""
    mine, parent = words(c.question), words(c.parent_question)
    if mine == parent:
        return True
    return OPERATIONS.lookup(c.operation).direction == "up" and set(mine) <= set(parent)


@register_filter("unanswered", needs_answer=True)
def unanswered(c: Candidate, cfg: EliminationConfig) -> bool:
    """The teacher failed to answer: nothing, no final answer, or a short apology."""
    answer = (c.answer or "").strip()
    if not answer:
        return True
    if cfg.need_final_answer and extract_answer(answer) is None:
        return True
    return bool(re.search(r"\bsorry\b", answer, re.IGNORECASE)) and len(answer.split()) < cfg.refusal_words


def _ngrams(tokens: list[str], n: int) -> set[tuple[str, ...]]:
    return {tuple(tokens[i: i + n]) for i in range(len(tokens) - n + 1)}


def first_failure(c: Candidate, cfg: EliminationConfig, answered: bool) -> str | None:
    """The first configured filter of this phase (before answering, or after) that fires on `c`, else None."""
    for name in cfg.filters:
        entry = FILTERS.lookup(name)
        if entry.needs_answer == answered and entry.fn(c, cfg):
            return name
    return None
