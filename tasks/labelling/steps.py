"""Cutting a solution into reasoning steps (Math-Shepherd, Lightman et al. 2023): the unit a process reward
model scores and Math-Shepherd labels. Steps are exact slices of the text (`"".join(steps) == text`), so a
step's prefix is the very text the policy wrote and a completion from it continues that text."""
from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


class StepSplitConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    mode: Literal["lines", "regex"] = Field(default="lines", description="lines: one step per line (GSM8K-style "
                                            "solutions, one calculation each); regex: a step ends after each "
                                            "match of `pattern`")
    pattern: str = Field(default=r"\n\n", description="regex mode: the text that ends a step (e.g. a blank line, "
                         r"or '(?<=\.) ' for sentences)")
    max_steps: int = Field(default=12, ge=1, description="later text joins the last step (a rambling sample "
                           "does not multiply the completions to sample)")

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, pattern: str) -> str:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ValueError(f"pattern {pattern!r} is not a regular expression: {exc}") from exc
        return pattern


def split_steps(text: str, cfg: StepSplitConfig = StepSplitConfig()) -> list[str]:
    """The steps of `text`, each with its terminator; blank pieces join the step before them."""
    boundary = r"(?<=\n)" if cfg.mode == "lines" else f"(?<={cfg.pattern})" if _fixed_width(cfg.pattern) else None
    pieces = re.split(boundary, text) if boundary else _split_after(text, cfg.pattern)
    steps: list[str] = []
    for piece in pieces:
        if steps and (not piece.strip() or len(steps) == cfg.max_steps):
            steps[-1] += piece
        elif piece:
            steps.append(piece)
    if steps and not steps[0].strip() and len(steps) > 1:  # leading blank text belongs to the first step
        steps[1] = steps[0] + steps[1]
        steps.pop(0)
    return steps


def _fixed_width(pattern: str) -> bool:
    try:
        re.compile(f"(?<={pattern})")
        return True
    except re.error:
        return False


def _split_after(text: str, pattern: str) -> list[str]:
    """Pieces ending after each match of a pattern a lookbehind cannot hold (variable width)."""
    pieces, start = [], 0
    for match in re.finditer(pattern, text):
        if match.end() > start:
            pieces.append(text[start: match.end()])
            start = match.end()
    return pieces + [text[start:]]
