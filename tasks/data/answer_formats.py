"""How a dataset row states what a right answer is (issue 13, item 2), one registry entry per format: GSM8K's
`#### x` line or MATH's `\\boxed{x}` in the solution, a plain final-answer column, or unit tests (code). Each
entry turns the mapped columns of one row into the reference fields its labellers read, and names the table
schema those rows are written with; adding a format touches this module only."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from models.registry import Registry
from tasks.core.records import CODE_PROBLEMS, MATH_PROBLEMS, RecordSchema
from tasks.labelling.answers import extract_boxed, extract_final_answer


class BadRow(ValueError):
    """A row that cannot become a problem: names the file, the row (0-based, as `datasets` counts) and field."""

    def __init__(self, where: str, row: int | None, field: str | None, why: str):
        at = f"{where}" + (f", row {row}" if row is not None else "") + (f", field {field!r}" if field else "")
        super().__init__(f"{at}: {why}")
        self.where, self.row, self.field, self.why = where, row, field, why


@dataclass(frozen=True)
class RowReader:
    """One row's columns, read with errors that name the file, the row and the column."""

    raw: dict
    index: int
    where: str

    def text(self, column: str, setting: str) -> str:
        if column not in self.raw:
            raise BadRow(self.where, self.index, column, f"column missing ({setting}); the data has {sorted(self.raw)}")
        value = self.raw[column]
        if not isinstance(value, str) or not value.strip():
            # `datasets` gives a key some rows lack as None
            got = "empty" if isinstance(value, str) else "missing" if value is None else f"a {type(value).__name__}"
            raise BadRow(self.where, self.index, column, f"is {got}, expected non-empty text ({setting})")
        return value

    def answer(self, column: str, setting: str) -> str:
        """A final answer: text, or a number written as a person would (MAWPS stores 14 as 14.0)."""
        value = self.raw.get(column)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(int(value)) if float(value).is_integer() else str(value)
        return self.text(column, setting)


@dataclass(frozen=True)
class AnswerFormat:
    # (row, columns config, the solution text or None) -> the reference fields of the problem row
    reference: Callable[[RowReader, object, str | None], dict]
    schema: RecordSchema
    needs: tuple[str, ...] = ()  # the `columns.*` settings the format reads, checked when the config is read
    description: str = ""


ANSWER_FORMATS = Registry("answer format")


def _extracted(extract: Callable[[str], str | None], wanted: str, name: str):
    def reference(row: RowReader, cols, solution: str | None) -> dict:
        source = solution if cols.final is None else row.text(cols.final, "columns.final")
        final = extract(source)
        if final is None:
            raise BadRow(row.where, row.index, cols.final or cols.solution, f"has no {wanted} (answer_format={name})")
        return {"final": final}
    return reference


ANSWER_FORMATS["gsm8k"] = AnswerFormat(
    _extracted(extract_final_answer, "'#### <answer>' line", "gsm8k"), MATH_PROBLEMS,
    description="the `#### x` line of the solution (or of columns.final)")
ANSWER_FORMATS["boxed"] = AnswerFormat(
    _extracted(extract_boxed, "\\boxed{...} answer", "boxed"), MATH_PROBLEMS,
    description="the last \\boxed{x} of the solution (or of columns.final)")
ANSWER_FORMATS["field"] = AnswerFormat(
    lambda row, cols, solution: {"final": row.answer(cols.final, "columns.final")}, MATH_PROBLEMS, ("final",),
    description="columns.final as it is")
# Codex / HumanEval: the reference is a test program defining check(), run against the entry point
ANSWER_FORMATS["tests"] = AnswerFormat(
    lambda row, cols, solution: {"test": row.text(cols.test, "columns.test"),
                                 "entry_point": row.text(cols.entry_point, "columns.entry_point")},
    CODE_PROBLEMS, ("test", "entry_point"), description="unit tests (columns.test, columns.entry_point)")
