"""Evol-Instruct's operations (Xu et al. 2023, WizardLM; Luo et al. 2023, WizardMath): each rewrites a question
through a teacher model, upward (harder: add constraints, concretise, deepen, more reasoning steps, complicate the
input) or downward (easier, which WizardMath adds so the data spans difficulties). An operation is one registry
entry with its instruction; adding one is one `register_operation(...)` call here.

Pure functions: the evolution prompt of a (question, operation), which operations a question gets in a round, and
the evolved question parsed out of the teacher's text."""
from __future__ import annotations

import random
import re
from dataclasses import dataclass

from models.registry import Registry


@dataclass(frozen=True)
class Operation:
    name: str
    direction: str  # "up" (harder) or "down" (easier)
    method: str  # the instruction that says how to rewrite; the rest of the prompt is the direction's frame


OPERATIONS = Registry("evolution operation")


def register_operation(name: str, direction: str, method: str) -> Operation:
    if direction not in FRAMES:
        raise ValueError(f"operation {name!r}: direction must be one of {sorted(FRAMES)}, got {direction!r}")
    OPERATIONS[name] = Operation(name, direction, method)
    return OPERATIONS[name]


# WizardLM's in-depth prompt frame (its wording about the markers is what the copy filter looks for); the
# downward frame is WizardMath's: the same rewriter, asked for an easier question instead.
_UP = ("I want you to act as a Prompt Rewriter.\nYour objective is to rewrite a given prompt into a more complex "
       "version to make famous AI systems (e.g., ChatGPT and GPT-4) a bit harder to handle.\nBut the rewritten "
       "prompt must be reasonable and must be understood and answered by humans.\nYou SHOULD complicate the given "
       "prompt using the following method:\n{method}\nYou should try your best not to make the #Rewritten Prompt# "
       "verbose; #Rewritten Prompt# can only add 10 to 20 words into #The Given Prompt#.\n'#The Given Prompt#', "
       "'#Rewritten Prompt#', 'given prompt' and 'rewritten prompt' are not allowed to appear in #Rewritten "
       "Prompt#.\n#The Given Prompt#:\n{question}\n#Rewritten Prompt#:\n")
_DOWN = ("I want you to act as a Prompt Rewriter.\nYour objective is to rewrite a given prompt into an easier "
         "version that a student can solve.\nThe rewritten prompt must still be a complete, answerable question.\n"
         "You SHOULD simplify the given prompt using the following method:\n{method}\n'#The Given Prompt#', "
         "'#Rewritten Prompt#', 'given prompt' and 'rewritten prompt' are not allowed to appear in #Rewritten "
         "Prompt#.\n#The Given Prompt#:\n{question}\n#Rewritten Prompt#:\n")
FRAMES = {"up": _UP, "down": _DOWN}

register_operation("add_constraints", "up",
                   "Please add one more constraint or requirement into #The Given Prompt#.")
register_operation("concretize", "up", "Please replace general concepts with more specific concepts.")
register_operation("deepen", "up", "If #The Given Prompt# contains inquiries about certain issues, the depth and "
                   "breadth of the inquiry can be increased.")
register_operation("increase_reasoning", "up", "If #The Given Prompt# can be solved with just a few simple "
                   "thinking processes, rewrite it to explicitly require multiple-step reasoning.")
register_operation("complicate_input", "up", "Please add one more quantity the answer depends on, given as data "
                   "in the question (a number, a short list or a small table of values).")
register_operation("easier", "down", "Please make the question easier: fewer steps, smaller numbers, or a simpler "
                   "question on a related topic.")


def evolution_prompt(question: str, operation: str) -> str:
    """The prompt that asks the teacher to rewrite `question` by `operation`."""
    op = OPERATIONS.lookup(operation)
    return FRAMES[op.direction].format(method=op.method, question=question.strip())


def instruction_text(operation: str) -> str:
    """The operation's own wording (its frame and method, without the question): what a rewrite must not copy."""
    op = OPERATIONS.lookup(operation)
    return FRAMES[op.direction].format(method=op.method, question="")


def choose_operations(parent_id: str, round_: int, operations: list[str], per_question: int | None,
                      seed: int) -> list[str]:
    """The operations this question gets this round: all of them (`per_question` None), or a draw of
    `per_question` seeded by (seed, round, question), so a resumed or repeated run draws the same."""
    if per_question is None or per_question >= len(operations):
        return list(operations)
    return random.Random(f"{seed}-{round_}-{parent_id}").sample(list(operations), per_question)


def candidate_id(parent_id: str, round_: int, operation: str) -> str:
    """Readable lineage in the id itself: gsm8k-train-00003~r1.deepen~r2.easier."""
    return f"{parent_id}~r{round_}.{operation}"


_LABEL = re.compile(r"^\s*(?:#+\s*)?(?:the\s+)?rewritten\s+prompt\s*#*\s*:?\s*", re.IGNORECASE)
_NEXT_SECTION = re.compile(r"\n\s*#[A-Za-z][^#\n]{0,40}#")


def parse_evolved(text: str) -> str:
    """The evolved question out of the teacher's text: a leading "#Rewritten Prompt#:" label removed, cut where
    the teacher starts another #Section#, wrapping quotes and whitespace stripped. Whatever else the teacher
    copied stays, for the copy filter to see."""
    question = _LABEL.sub("", text.strip(), count=1)
    question = _NEXT_SECTION.split(question, maxsplit=1)[0]
    question = question.strip()
    if len(question) >= 2 and question[0] == question[-1] and question[0] in "\"'":
        question = question[1:-1].strip()
    return question
