"""TinyArith: seeded multi-step arithmetic word problems in GSM8K format.

A person starts with some items; 2-5 events change the count (+, -, boxes k*m, doubling/tripling, equal
split). Distractor sentences add numbers the answer does not need. Numbers stay small (operands up to
`max_operand`, every intermediate value in [0, `max_value`]) so a tiny digit-level model can do the
arithmetic and the difficulty lies in the reasoning.

Solutions follow GSM8K: one calculation per line with a calculator annotation, e.g.
``The bags hold 3*4 = <<3*4=12>>12 apples.``, and a last line ``#### 15``. Where the maths allows several
orders (commuting +/- steps within a run, grouping gains and losses, operand order of + and *),
`write_solution` picks a random valid one with probability `shuffle_order_prob` per choice, so resampling it
gives the distribution of distinct reasoning paths that rejection-sampling fine-tuning collects.

Text format used for training and sampling (prompt + completion == training text)::

    prompt     = to_prompt(question)  == f"Question: {question}\\nAnswer:"
    completion = to_completion(answer) == " " + answer
"""
from __future__ import annotations

import functools
import itertools
import random
from dataclasses import dataclass
from typing import TypeVar

from tasks.data.tiny_arith_text import (
    Event,
    ITEMS,
    Item,
    Person,
    StoryContext,
    pick_person,
    render_question,
    step_line,
)

EVENT_KINDS: tuple[str, ...] = ("add", "sub", "boxes", "mul", "div")
_KIND_WEIGHTS: tuple[float, ...] = (3.0, 3.0, 2.0, 1.5, 2.0)
_ATTEMPTS_PER_PROBLEM = 50
_MAX_CONSECUTIVE_DUPLICATES = 2000
T = TypeVar("T")


@dataclass(frozen=True)
class TinyArithSpec:
    seed: int
    n_train: int
    n_test: int
    min_steps: int = 2
    max_steps: int = 5
    max_operand: int = 12
    max_value: int = 99
    distractor_prob: float = 0.5
    shuffle_order_prob: float = 0.5

    def __post_init__(self) -> None:
        if not 1 <= self.min_steps <= self.max_steps:
            raise ValueError(f"need 1 <= min_steps <= max_steps, got {self.min_steps}, {self.max_steps}")
        if self.max_operand < 2 or self.max_value < 2 * self.max_operand:
            raise ValueError(f"need max_operand >= 2 and max_value >= 2*max_operand, got {self}")
        if self.n_train < 0 or self.n_test < 0:
            raise ValueError(f"n_train and n_test must be >= 0, got {self.n_train}, {self.n_test}")
        if not (0.0 <= self.distractor_prob <= 1.0 and 0.0 <= self.shuffle_order_prob <= 1.0):
            raise ValueError(f"distractor_prob and shuffle_order_prob must be in [0, 1], got {self}")


@dataclass(frozen=True)
class Problem:
    """Everything needed to (re)write a solution: the question text plus the underlying arithmetic."""

    question: str
    person: Person
    item: Item
    start: int
    events: tuple[Event, ...]
    max_value: int

    @property
    def final(self) -> int:
        return functools.reduce(apply_event, self.events, self.start)


def to_prompt(question: str) -> str:
    return f"Question: {question}\nAnswer:"


def to_completion(answer: str) -> str:
    return " " + answer


def apply_event(value: int, event: Event) -> int:
    if event.kind == "add":
        return value + event.amount
    if event.kind == "sub":
        return value - event.amount
    if event.kind == "boxes":
        return value + event.count * event.amount
    if event.kind == "mul":
        return value * event.amount
    if event.kind == "div":
        return value // event.amount
    raise ValueError(f"unknown event kind {event.kind!r}")


def _feasible_event(kind: str, value: int, spec: TinyArithSpec, rng: random.Random) -> Event | None:
    """A random event of `kind` keeping the count in [1, max_value], or None if none fits."""
    room = spec.max_value - value
    if kind == "add" and room >= 1:
        return Event("add", rng.randint(1, min(spec.max_operand, room)))
    # Subtractions leave at least one item so later doubling/splitting stays meaningful.
    if kind == "sub" and value >= 2:
        return Event("sub", rng.randint(1, min(spec.max_operand, value - 1)))
    if kind == "boxes":
        pairs = [(k, m) for k in range(2, 6) for m in range(2, spec.max_operand + 1) if k * m <= room]
        if not pairs:
            return None
        count, amount = rng.choice(pairs)
        return Event("boxes", amount, count)
    if kind == "mul" and value >= 2:
        factors = [f for f in (2, 3) if value * f <= spec.max_value]
        return Event("mul", rng.choice(factors)) if factors else None
    if kind == "div":
        divisors = [k for k in range(2, 6) if value % k == 0 and value // k >= 1]
        return Event("div", rng.choice(divisors)) if divisors else None
    return None


def _sample_events(spec: TinyArithSpec, start: int, rng: random.Random) -> tuple[Event, ...]:
    n_steps = rng.randint(spec.min_steps, spec.max_steps)
    value, events = start, []
    for _ in range(n_steps):
        kinds, weights = list(EVENT_KINDS), list(_KIND_WEIGHTS)
        while True:
            kind = rng.choices(kinds, weights)[0]
            event = _feasible_event(kind, value, spec, rng)
            if event is not None:
                break
            weights[kinds.index(kind)] = 0.0
        events.append(event)
        value = apply_event(value, event)
    return tuple(events)


def sample_problem(spec: TinyArithSpec, rng: random.Random) -> Problem:
    person = pick_person(rng)
    item = rng.choice(ITEMS)
    start = rng.randint(1, spec.max_operand)
    events = _sample_events(spec, start, rng)
    units: list[Event | None] = list(events)
    for _ in range(2):
        if rng.random() < spec.distractor_prob:
            units.insert(rng.randint(0, len(units)), None)
    question = render_question(person, item, start, units, spec.max_operand, rng)
    return Problem(question, person, item, start, events, spec.max_value)


def _choose(options: list[T], canonical: T, p: float, rng: random.Random) -> T:
    """With probability p pick uniformly among all options (canonical included), else the canonical one."""
    return rng.choice(options) if rng.random() < p else canonical


def _commute(a: int, op: str, b: int, p: float, rng: random.Random) -> tuple[int, str, int]:
    return _choose([(a, op, b), (b, op, a)], (a, op, b), p, rng)


def _valid_orders(value: int, terms: list[tuple[int, Event]], max_value: int) -> list[tuple]:
    """Orders of a run of signed terms whose running totals all stay in [0, max_value]."""
    valid = []
    for order in itertools.permutations(terms):
        running, ok = value, True
        for signed, _ in order:
            running += signed
            ok = ok and 0 <= running <= max_value
        if ok:
            valid.append(order)
    return valid


def _product_line(event: Event, ctx: StoryContext, p: float, rng: random.Random) -> str:
    return step_line("boxes", *_commute(event.count, "*", event.amount, p, rng), ctx, rng)


def _write_sequential(value: int, order: tuple, ctx: StoryContext, p: float, rng: random.Random) -> list[str]:
    lines = []
    for signed, event in order:
        if event.kind == "boxes":
            lines.append(_product_line(event, ctx, p, rng))
        if signed >= 0:
            lines.append(step_line("add", *_commute(value, "+", signed, p, rng), ctx, rng))
        else:
            lines.append(step_line("sub", value, "-", -signed, ctx, rng))
        value += signed
    return lines


def _fold(amounts: list[int], kind: str, ctx: StoryContext, p: float, rng: random.Random) -> list[str]:
    lines, total = [], amounts[0] if amounts else 0
    for amount in amounts[1:]:
        lines.append(step_line(kind, *_commute(total, "+", amount, p, rng), ctx, rng))
        total += amount
    return lines


def _write_grouped(value: int, terms: list[tuple[int, Event]], ctx: StoryContext, p: float,
                   rng: random.Random) -> list[str] | None:
    """Total the gains, then the losses, then apply both; None when this would break max_value."""
    gains = [s for s, _ in terms if s > 0]
    losses = [-s for s, _ in terms if s < 0]
    if (len(gains) < 2 and len(losses) < 2) or value + sum(gains) > ctx.max_value:
        return None
    lines = [_product_line(e, ctx, p, rng) for _, e in terms if e.kind == "boxes"]
    lines += _fold(gains, "gain_total", ctx, p, rng) + _fold(losses, "loss_total", ctx, p, rng)
    if gains:
        lines.append(step_line("add", *_commute(value, "+", sum(gains), p, rng), ctx, rng))
    if losses:
        lines.append(step_line("sub", value + sum(gains), "-", sum(losses), ctx, rng))
    return lines


def _write_run(value: int, run: list[Event], ctx: StoryContext, p: float, rng: random.Random) -> list[str]:
    terms = [(apply_event(0, e), e) for e in run]
    if len(terms) > 1 and rng.random() < p / 2:
        grouped = _write_grouped(value, terms, ctx, p, rng)
        if grouped is not None:
            return grouped
    orders = _valid_orders(value, terms, ctx.max_value) if len(terms) > 1 else [tuple(terms)]
    order = _choose(orders, tuple(terms), p, rng)
    return _write_sequential(value, order, ctx, p, rng)


def write_solution(problem: Problem, rng: random.Random, shuffle_order_prob: float) -> str:
    """A GSM8K-style solution; resample with different rngs to get different valid calculation paths."""
    ctx = StoryContext(problem.person, problem.item, problem.max_value)
    p, value, lines, run = shuffle_order_prob, problem.start, [], []
    for event in (*problem.events, None):
        if event is not None and event.kind in ("add", "sub", "boxes"):
            run.append(event)
            continue
        if run:
            lines += _write_run(value, run, ctx, p, rng)
            value, run = functools.reduce(apply_event, run, value), []
        if event is None:
            break
        if event.kind == "mul":
            lines.append(step_line("mul", *_commute(value, "*", event.amount, p, rng), ctx, rng))
        else:
            lines.append(step_line("div", value, "/", event.amount, ctx, rng))
        value = apply_event(value, event)
    lines.append(f"#### {value}")
    return "\n".join(lines)


def _row(split: str, index: int, problem: Problem, rng: random.Random, p: float) -> dict:
    return {
        "id": f"{split}-{index:06d}",
        "question": problem.question,
        "answer": write_solution(problem, rng, p),
        "final": str(problem.final),
        "n_steps": len(problem.events),
    }


def generate_problem_states(spec: TinyArithSpec) -> tuple[list[Problem], list[Problem]]:
    """Distinct problems (by question text), split into (train, test); same spec, same output."""
    rng = random.Random(spec.seed)
    wanted = spec.n_train + spec.n_test
    seen: set[str] = set()
    problems: list[Problem] = []
    misses = 0
    # Both bounds matter: the total one caps the work, the consecutive one fails fast on an exhausted space.
    for _ in range(_ATTEMPTS_PER_PROBLEM * wanted + 1000):
        if len(problems) == wanted or misses >= _MAX_CONSECUTIVE_DUPLICATES:
            break
        problem = sample_problem(spec, rng)
        misses = misses + 1 if problem.question in seen else 0
        if problem.question not in seen:
            seen.add(problem.question)
            problems.append(problem)
    if len(problems) < wanted:
        raise ValueError(
            f"TinyArith: only {len(problems)} distinct questions found, {wanted} requested "
            f"(n_train={spec.n_train}, n_test={spec.n_test}); widen max_operand/max_value or steps"
        )
    return problems[: spec.n_train], problems[spec.n_train:]


def generate_problems(spec: TinyArithSpec) -> tuple[list[dict], list[dict]]:
    """(train, test) rows with keys id, question, answer, final, n_steps."""
    train, test = generate_problem_states(spec)
    # A separate stream for solutions so question sampling does not depend on how solutions are written.
    rng = random.Random(f"{spec.seed}-solutions")
    p = spec.shuffle_order_prob
    return (
        [_row("train", i, prob, rng, p) for i, prob in enumerate(train)],
        [_row("test", i, prob, rng, p) for i, prob in enumerate(test)],
    )

