"""Word lists and sentence templates for TinyArith (kept small so the vocabulary stays under ~300 words)."""
from __future__ import annotations

import random
import re
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Event:
    """One change to the count; `kind` in tiny_arith.EVENT_KINDS. For "boxes" the gain is count*amount."""

    kind: str
    amount: int
    count: int = 1


@dataclass(frozen=True)
class Person:
    name: str
    subj: str  # "he" / "she"
    obj: str  # "him" / "her"
    pos: str  # "his" / "her"


@dataclass(frozen=True)
class Item:
    singular: str
    plural: str
    container: str
    containers: str
    edible: bool

    def noun(self, n: int) -> str:
        return self.singular if n == 1 else self.plural


_HE = ("Tom", "Sam", "Ben", "Max", "Leo", "Jack", "Omar", "Ravi")
_SHE = ("Ann", "Mia", "Lucy", "Emma", "Zoe", "Lily", "Sara", "Nina")

ITEMS: tuple[Item, ...] = (
    Item("apple", "apples", "bag", "bags", True),
    Item("cookie", "cookies", "box", "boxes", True),
    Item("egg", "eggs", "carton", "cartons", True),
    Item("orange", "oranges", "bag", "bags", True),
    Item("candy", "candies", "jar", "jars", True),
    Item("pencil", "pencils", "box", "boxes", False),
    Item("marble", "marbles", "bag", "bags", False),
    Item("sticker", "stickers", "pack", "packs", False),
    Item("card", "cards", "pack", "packs", False),
    Item("book", "books", "box", "boxes", False),
    Item("ball", "balls", "box", "boxes", False),
    Item("shell", "shells", "bag", "bags", False),
)


@dataclass(frozen=True)
class StoryContext:
    """What a solution line needs besides its arithmetic."""

    person: Person
    item: Item
    max_value: int


def _person(name: str) -> Person:
    return Person(name, "he", "him", "his") if name in _HE else Person(name, "she", "her", "her")


def pick_person(rng: random.Random) -> Person:
    return _person(rng.choice(_HE + _SHE))


def pick_other_name(person: Person, rng: random.Random) -> str:
    return rng.choice([n for n in _HE + _SHE if n != person.name])


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def mentions_other(sentence: str, person: Person) -> bool:
    """Whether a sentence names someone else, after which a bare "he"/"she" would be ambiguous."""
    words = set(re.findall(r"[A-Za-z]+", sentence))
    return any(name in words for name in _HE + _SHE if name != person.name)


def _fill(template: str, person: Person, item: Item, rng: random.Random, use_name: bool = False,
          **extra: Any) -> str:
    fields = {"name": person.name, "subj": person.subj, "obj": person.obj, "pos": person.pos,
              "Subj": person.name if use_name else person.subj, "Obj": person.name if use_name else person.obj,
              "plural": item.plural, **extra}
    if "{other}" in template:
        fields["other"] = pick_other_name(person, rng)
    return _cap(template.format(**fields))


def _event_templates(event: Event, item: Item) -> list[str]:
    if event.kind == "add":
        return ["{Subj} buys {n} more {noun}.", "{Subj} finds {n} more {noun}.",
                "{other} gives {Obj} {n} more {noun}."]
    if event.kind == "sub":
        eats = ["{Subj} eats {n} of them."] if item.edible else []
        return ["{Subj} gives {n} {noun} to {other}.", "{Subj} loses {n} {noun}."] + eats
    if event.kind == "boxes":
        return ["{Subj} buys {k} {containers} of {plural} with {n} {noun} in each {container}."]
    if event.kind == "mul":
        verb = {2: "doubles", 3: "triples"}[event.amount]
        return [f"{{Subj}} {verb} the number of {{plural}} {{subj}} has.",
                f"Then the number of {{plural}} {{name}} has {verb}."]
    return ["{Subj} splits {pos} {plural} into {n} equal groups and keeps one group.",
            "{Subj} shares {pos} {plural} equally among {n} people, including {obj}self, and keeps one share."]


def render_event(event: Event, person: Person, item: Item, rng: random.Random, use_name: bool) -> str:
    template = rng.choice(_event_templates(event, item))
    return _fill(template, person, item, rng, use_name, n=event.amount, noun=item.noun(event.amount), k=event.count,
                 container=item.container, containers=item.containers)


def render_distractor(person: Person, item: Item, max_operand: int, rng: random.Random,
                      use_name: bool) -> str:
    """A sentence with a number that the answer does not need."""
    n = rng.randint(1, max_operand)
    other_item = rng.choice([i for i in ITEMS if i != item])
    template, noun = rng.choice([
        ("{other} has {n} {noun}.", item.noun(n)),
        ("{other} buys {n} {noun}.", item.noun(n)),
        ("{Subj} also has {n} {noun}.", other_item.noun(n)),
        ("{other} gives {Obj} {n} {noun}.", other_item.noun(n)),
    ])
    return _fill(template, person, item, rng, use_name, n=n, noun=noun)


def render_question(person: Person, item: Item, start: int, units: list[Event | None], max_operand: int,
                    rng: random.Random) -> str:
    """The question text; `units` are the events in order with None where a distractor goes."""
    sentences: list[str] = []
    for unit in units:
        # After a sentence naming someone else, "he"/"she" would be ambiguous, so use the name.
        use_name = bool(sentences) and mentions_other(sentences[-1], person)
        if unit is None:
            sentences.append(render_distractor(person, item, max_operand, rng, use_name))
        else:
            sentences.append(render_event(unit, person, item, rng, use_name))
    opening = f"{person.name} has {start} {item.noun(start)}."
    ending = rng.choice(["How many {plural} does {name} have now?", "How many {plural} does {name} have at the end?"])
    return " ".join([opening, *sentences, _fill(ending, person, item, rng)])


_STEP_TEMPLATES: tuple[tuple[str, str], ...] = (
    # Short lines without names: every solution token is paid for in training and K times in sampling, and a
    # name to copy adds nothing to the reasoning being measured.
    ("boxes", "The {containers} hold {expr}."),
    ("add", "Adding gives {expr}."),
    ("sub", "Taking away leaves {expr}."),
    ("mul", "Multiplying gives {expr}."),
    ("div", "Each share is {expr}."),
    ("gain_total", "The gains total {expr}."),
    ("loss_total", "The losses total {expr}."),
)


def _compute(a: int, op: str, b: int) -> int:
    if op == "+":
        return a + b
    if op == "-":
        return a - b
    if op == "*":
        return a * b
    if op == "/" and b != 0 and a % b == 0:
        return a // b
    raise ValueError(f"not an exact integer step: {a}{op}{b}")


def step_line(kind: str, a: int, op: str, b: int, ctx: StoryContext, rng: random.Random) -> str:
    """One solution line with a GSM8K calculator annotation, e.g. `Tom now has 3+4 = <<3+4=7>>7 apples.`"""
    c = _compute(a, op, b)
    if not 0 <= c <= ctx.max_value:
        raise ValueError(f"step {a}{op}{b}={c} leaves [0, {ctx.max_value}]")
    template = dict(_STEP_TEMPLATES)[kind]
    expr = f"{a}{op}{b} = <<{a}{op}{b}={c}>>{c}"
    return _fill(template, ctx.person, ctx.item, rng, expr=expr, noun=ctx.item.noun(c), c=c,
                 containers=ctx.item.containers)
