"""Self-Instruct's pure pieces (Wang et al. 2023; Alpaca, Taori et al. 2023): the few-shot prompt that asks a
teacher for new task instructions, the instructions parsed out of its text, and the filters an instruction must
pass to join the pool: length bounds, banned keywords (tasks a language model cannot do: images, files, plots),
no leading punctuation or non-English character, not a duplicate, and ROUGE-L below a threshold against every
instruction already in the pool (the paper's novelty filter, with the `rouge-score` package). Each filter is a
registered pure function `fn(instruction, pool, cfg) -> bool` (True: reject); the first that fires is the reason."""
from __future__ import annotations

import random
import re
import string
from dataclasses import dataclass
from typing import Callable

from pydantic import BaseModel, ConfigDict, Field, field_validator

from models.registry import Registry

BANNED = ["image", "images", "graph", "graphs", "picture", "pictures", "file", "files", "map", "maps", "draw",
          "plot", "go to", "video", "audio", "music", "flowchart", "diagram"]  # Self-Instruct's list


class InstructionFilterConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    filters: list[str] = Field(default_factory=lambda: list(INSTRUCTION_FILTERS),
                               description="applied in this order; the first that fires is the reason")
    min_words: int = Field(default=3, ge=1, description="too_short: fewer words than this")
    max_words: int = Field(default=150, ge=1, description="too_long: more words than this")
    banned: list[str] = Field(default_factory=lambda: list(BANNED), description="banned_keywords: whole words")
    rouge_threshold: float = Field(default=0.7, gt=0, le=1, description="too_similar: ROUGE-L F against any pool "
                                   "instruction at or above this")

    @field_validator("filters")
    @classmethod
    def _known(cls, names: list[str]) -> list[str]:
        for name in names:
            INSTRUCTION_FILTERS.lookup(name)
        return names


class Pool:
    """The instructions kept so far (seeds first): what the duplicate and novelty filters compare against."""

    def __init__(self, instructions: list[str] = ()):
        from rouge_score import rouge_scorer

        self.scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
        self.instructions: list[str] = []
        self.normalised: set[str] = set()
        self._nearest: dict[str, tuple[float, str | None]] = {}
        for text in instructions:
            self.add(text)

    def add(self, text: str) -> None:
        self.instructions.append(text)
        self.normalised.add(normalised(text))
        self._nearest.clear()  # a new member may be nearer than the one remembered

    def nearest(self, text: str) -> tuple[float, str | None]:
        """The highest ROUGE-L F of `text` against the pool, and that pool instruction."""
        if text not in self._nearest:
            best: tuple[float, str | None] = (0.0, None)
            for other in self.instructions:
                score = self.scorer.score(other, text)["rougeL"].fmeasure
                if score > best[0]:
                    best = (score, other)
            self._nearest[text] = best
        return self._nearest[text]


@dataclass(frozen=True)
class InstructionFilter:
    name: str
    fn: Callable[[str, Pool, InstructionFilterConfig], bool]


INSTRUCTION_FILTERS = Registry("instruction filter")


def register_filter(name: str):
    def wrap(fn):
        INSTRUCTION_FILTERS[name] = InstructionFilter(name, fn)
        return fn
    return wrap


def normalised(text: str) -> str:
    return " ".join(text.lower().translate(str.maketrans({c: " " for c in string.punctuation})).split())


@register_filter("too_short")
def too_short(text: str, pool: Pool, cfg: InstructionFilterConfig) -> bool:
    return len(text.split()) < cfg.min_words


@register_filter("too_long")
def too_long(text: str, pool: Pool, cfg: InstructionFilterConfig) -> bool:
    return len(text.split()) > cfg.max_words


@register_filter("banned_keywords")
def banned_keywords(text: str, pool: Pool, cfg: InstructionFilterConfig) -> bool:
    """A task a text-only model cannot do (look at an image, open a file, draw a plot)."""
    return any(re.search(rf"\b{re.escape(word)}\b", text, re.IGNORECASE) for word in cfg.banned)


@register_filter("starts_with_punctuation")
def starts_with_punctuation(text: str, pool: Pool, cfg: InstructionFilterConfig) -> bool:
    return text[:1] in string.punctuation


@register_filter("non_english")
def non_english(text: str, pool: Pool, cfg: InstructionFilterConfig) -> bool:
    return not text[:1].isascii()  # the paper's test: the first character


@register_filter("duplicate")
def duplicate(text: str, pool: Pool, cfg: InstructionFilterConfig) -> bool:
    return normalised(text) in pool.normalised


@register_filter("too_similar")
def too_similar(text: str, pool: Pool, cfg: InstructionFilterConfig) -> bool:
    return pool.nearest(text)[0] >= cfg.rouge_threshold


def first_failure(text: str, pool: Pool, cfg: InstructionFilterConfig) -> str | None:
    for name in cfg.filters:
        if INSTRUCTION_FILTERS.lookup(name).fn(text, pool, cfg):
            return name
    return None


class PromptingConfig(BaseModel):
    """How each round asks the teacher for new instructions."""

    model_config = ConfigDict(extra="forbid")
    prompts_per_round: int = Field(default=8, ge=1)
    shots: int = Field(default=8, ge=1, description="example instructions per prompt (the paper: 8)")
    generated_shots: int = Field(default=2, ge=0, description="of which drawn from generated instructions, when "
                                 "the pool has them (the paper: 2 of 8)")
    seed: int = 0
    header: str = Field(default="Come up with a new task instruction, different from the ones below. Write each "
                        "new task on its own line as 'Task N: ...'.", description="before the examples")
    chat_template: bool = True
    system: str | None = None


def draw_examples(pool: list[dict], round_: int, index: int, cfg: PromptingConfig) -> list[dict]:
    """`cfg.shots` pool rows for prompt `index` of `round_`: up to `generated_shots` generated ones, the rest
    from the seeds (a seeded draw, so a repeated run asks the same)."""
    rng = random.Random(f"{cfg.seed}-{round_}-{index}")
    generated = [r for r in pool if r["origin"] == "generated"]
    seeds = [r for r in pool if r["origin"] != "generated"]
    picked = rng.sample(generated, min(cfg.generated_shots, len(generated)))
    picked += rng.sample(seeds, min(cfg.shots - len(picked), len(seeds)))
    rng.shuffle(picked)
    return picked


def instruction_prompt(examples: list[str], header: str) -> str:
    """The header, the examples as 'Task 1: ...', and the label of the next task for the teacher to fill."""
    tasks = [f"Task {i}: {' '.join(text.split())}" for i, text in enumerate(examples, 1)]
    return "\n".join([header, "", *tasks, f"Task {len(examples) + 1}:"])


_TASK_LABEL = re.compile(r"(?im)^\s*(?:\*\*)?task\s*\d+\s*[:.](?:\*\*)?\s*")


def parse_instructions(text: str, truncated: bool, limit: int) -> list[str]:
    """The new instructions in the teacher's text: split at 'Task N:' labels, each cut at its first blank line
    (what follows is chatter), whitespace collapsed; the last one dropped when the text was cut off by the token
    limit (it may be unfinished, as the paper drops it)."""
    items = [" ".join(part.strip().split("\n\n")[0].split()) for part in _TASK_LABEL.split(text)]
    items = [item.strip("\"' ") for item in items]
    if truncated and items:
        items = items[:-1]
    return [item for item in items if item][:limit]
