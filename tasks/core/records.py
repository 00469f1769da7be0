"""Typed records between stages (issue 12, item 3): one schema per kind of table, checked when a stage writes.

Stages pass tables of plain dict rows through Parquet. Each kind of table declares its columns here as Arrow
types; `RecordSchema.to_table` checks every row against them before anything is written, so a stage that writes
a missing or mistyped field fails at once, naming the table, the row and the field, instead of a later stage
failing with a KeyError. Method-specific fields are typed extensions of a core schema: problem sets extend
PROBLEMS (math: question/answer/final; code: test/entry_point), and each labeller declares the fields it adds
to LABELS where it is registered (tasks/labelling/labellers.py).

Storage types stay what they were (issue 12, item 4): columns are still inferred from the values as
`pa.Table.from_pylist` did, so an existing table is written byte for byte as before; only samples, whose shards
must concatenate, are stored with their declared types. The check runs per column on the Arrow array, and
scans rows only for a column whose inferred type is not the declared one, to find the offending row.
"""
from __future__ import annotations

import numbers
import types
import typing
from dataclasses import dataclass, replace
from typing import Iterable

import pyarrow as pa

from ray_cluster.generation import CompletionRecord

STRINGS = pa.list_(pa.string())


class RecordError(ValueError):
    """A row that does not match its table's schema: names the table, the row index and the field."""

    def __init__(self, table: str, row: int, field: str | None, problem: str):
        self.table, self.row, self.field = table, row, field
        super().__init__(f"{table}, row {row}: " + (f"field {field!r} {problem}" if field else problem))


@dataclass(frozen=True)
class Column:
    name: str
    type: pa.DataType
    required: bool = True  # present and not None in every row; False: may be absent or None


@dataclass(frozen=True)
class RecordSchema:
    kind: str
    columns: tuple[Column, ...]
    open: bool = False  # undeclared columns allowed (problem sets carry dataset-specific fields)
    fixed_types: bool = False  # stored with the declared types rather than the inferred ones
    hint: str = ""  # how to declare a field, added to the error for an undeclared one

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    def column(self, name: str) -> Column | None:
        return next((c for c in self.columns if c.name == name), None)

    def extend(self, columns: Iterable[Column], kind: str | None = None) -> "RecordSchema":
        """This schema plus `columns`; redeclaring a field is an error (an extension never retypes the core)."""
        added = tuple(columns)
        for col in added:
            if self.column(col.name) is not None or [c.name for c in added].count(col.name) > 1:
                raise ValueError(f"{kind or self.kind}: field {col.name!r} is declared twice "
                                 f"(the {self.kind} schema already has {self.names})")
        return replace(self, kind=kind or self.kind, columns=self.columns + added)

    def relaxed(self, keep: Iterable[str], kind: str | None = None) -> "RecordSchema":
        """The same columns, all optional except `keep`."""
        keep = set(keep)
        return replace(self, kind=kind or self.kind, fixed_types=False,
                       columns=tuple(replace(c, required=c.name in keep) for c in self.columns))

    def arrow(self) -> pa.Schema:
        # nullable as pyarrow makes every column: the same bytes as the untyped tables written before
        return pa.schema([(c.name, c.type) for c in self.columns])

    def to_table(self, rows: list[dict], table: str) -> pa.Table:
        """The rows as an Arrow table, after checking each against this schema (RecordError otherwise).

        An empty table gets the declared columns, so readers still see the schema.
        """
        if not rows:
            return self.arrow().empty_table()
        for index, row in enumerate(rows):
            if not isinstance(row, dict):
                raise RecordError(table, index, None, f"is a {type(row).__name__}, expected a dict of fields")
        arrays = {name: self._checked_array(rows, name, table) for name in _column_names(rows)}
        for col in self.columns:
            if col.required and col.name not in arrays:
                raise RecordError(table, 0, col.name, f"is missing (required: {col.type})")
        if self.fixed_types:  # every declared column, in declared order (as from_pylist with a schema)
            return pa.table([arrays.get(c.name, pa.nulls(len(rows), c.type)) for c in self.columns],
                            schema=self.arrow())
        return pa.table(arrays)

    def _checked_array(self, rows: list[dict], name: str, table: str) -> pa.Array:
        col = self.column(name)
        if col is None and not self.open:
            index = next(i for i, r in enumerate(rows) if name in r)
            raise RecordError(table, index, name, f"is not declared in the {self.kind} schema "
                              f"(declared: {self.names}){self.hint}")
        values = [row.get(name) for row in rows]
        try:
            array = pa.array(values)  # inferred, as pa.Table.from_pylist does
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            if col is not None:
                _scan(rows, col, table)
            index = _first_type_change(values)
            raise RecordError(table, index, name, f"is {_describe(values[index])}, which cannot be stored "
                              f"with the column's other values: {exc}") from None
        if col is None:
            return array
        if array.type != col.type and not pa.types.is_null(array.type):
            _scan(rows, col, table)  # raises on the first bad row; all good: e.g. ints in a float column
        if col.required and array.null_count:
            _scan(rows, col, table)
        # Values passed the check, so a differing type is ints given for floats (stored as floats) or an inferred
        # null type (all None, or only empty lists), kept as the untyped writer stored it unless types are fixed.
        if array.type != col.type and (self.fixed_types or not _has_null(array.type)):
            array = array.cast(col.type)
        return array


def _has_null(arrow_type: pa.DataType) -> bool:
    return pa.types.is_null(arrow_type) or (pa.types.is_list(arrow_type) and _has_null(arrow_type.value_type))


def _column_names(rows: list[dict]) -> list[str]:
    """The first row's keys, then keys that only later rows have (pyarrow would drop those silently)."""
    names = dict.fromkeys(rows[0])
    for row in rows[1:]:
        if row.keys() != names.keys():
            names.update(dict.fromkeys(row))
    return list(names)


def _scan(rows: list[dict], col: Column, table: str) -> None:
    for index, row in enumerate(rows):
        value = row.get(col.name)
        if value is None:
            if col.required:
                state = "is missing" if col.name not in row else "is None"
                raise RecordError(table, index, col.name, f"{state} (required: {col.type})")
        elif not _conforms(value, col.type):
            raise RecordError(table, index, col.name, f"is {_describe(value)}, expected {col.type}")


def _conforms(value, arrow_type: pa.DataType) -> bool:
    if pa.types.is_string(arrow_type):
        return isinstance(value, str)
    if pa.types.is_boolean(arrow_type):
        return isinstance(value, bool)
    if pa.types.is_integer(arrow_type):
        return isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if pa.types.is_floating(arrow_type):
        return isinstance(value, numbers.Real) and not isinstance(value, bool)
    if pa.types.is_list(arrow_type):
        return isinstance(value, (list, tuple)) and all(
            item is not None and _conforms(item, arrow_type.value_type) for item in value)
    raise TypeError(f"records: no check for Arrow type {arrow_type}")


def _describe(value) -> str:
    kind, text = type(value).__name__, repr(value)
    return f"{'an' if kind[0] in 'aeiou' else 'a'} {kind} ({text[:40] + '...' if len(text) > 40 else text})"


def _first_type_change(values: list) -> int:
    first = next((type(v) for v in values if v is not None), None)
    return next((i for i, v in enumerate(values) if v is not None and type(v) is not first), 0)


_PY_TO_ARROW = {str: pa.string(), int: pa.int64(), float: pa.float64(), bool: pa.bool_()}


def columns_of(model: type) -> tuple[Column, ...]:
    """The columns of a pydantic record (str/int/float/bool, optionally `| None`): required unless defaulted."""
    hints = typing.get_type_hints(model)
    columns = []
    for name, info in model.model_fields.items():
        hint = hints[name]
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
            hint = args[0] if len(args) == 1 else hint
        if hint not in _PY_TO_ARROW:
            raise TypeError(f"{model.__name__}.{name}: no Arrow type for {hint}")
        columns.append(Column(name, _PY_TO_ARROW[hint], required=info.is_required()))
    return tuple(columns)


# --- problems: train.parquet / test.parquet of a problem set (tasks/data/prepare*.py) -------------------------
# How a prompt is shown to a model (tasks/data/prompting.py), carried by every table that has a prompt, so
# sampling and every training method encode it alike (models/sft_data.prompt_format); absent: the defaults.
PRESENTATION = (Column("system", pa.string(), required=False), Column("chat_template", pa.bool_(), required=False))


def prompt_columns(row: dict) -> dict:
    """The prompt of a problem row with its presentation columns, as the tables made from it carry them."""
    return {name: row[name] for name in ("prompt", "system", "chat_template") if name in row}


PROBLEMS = RecordSchema("problems", (
    Column("id", pa.string()), Column("prompt", pa.string()),
    Column("completion", pa.string(), required=False),  # the written solution: what SFT trains on
    *PRESENTATION,
), open=True)
MATH_PROBLEMS = PROBLEMS.extend([
    Column("question", pa.string()), Column("answer", pa.string()),  # answer: the worked solution
    Column("final", pa.string()),  # the reference answer the math labellers compare with
    Column("n_steps", pa.int64(), required=False),
], kind="math problems")
CODE_PROBLEMS = PROBLEMS.extend([
    Column("test", pa.string()), Column("entry_point", pa.string()),  # HumanEval: `check(entry_point)`
    Column("description", pa.string(), required=False),
], kind="code problems")

# --- samples.parquet (tasks/generation/generate.py): exactly the backends' CompletionRecord ------------------
SAMPLES = RecordSchema("samples", columns_of(CompletionRecord), fixed_types=True)

# --- labels.parquet (tasks/labelling/label.py): the sample, its combined label, `reward_<labeller>` per labeller
# and the first labeller's own fields (labellers.labels_schema builds the full schema of one label config).
# Only the sample's identity is required: labels may be made from samples written elsewhere (imports, tests).
LABELS = replace(SAMPLES.relaxed(["prompt_id", "sample_index", "model_id"], kind="labels").extend([
    Column("pred", pa.string(), required=False), Column("correct", pa.bool_()), Column("reward", pa.float64()),
    Column("status", pa.string()),
]), hint="; a labeller declares its own fields where it registers: register_labeller(name, fields={...})")

# --- selected.parquet (tasks/selection/select.py): (prompt, completion) rows for SFT -------------------------
SELECTIONS = RecordSchema("selections", (
    Column("prompt_id", pa.string()), Column("prompt", pa.string()), Column("completion", pa.string()),
    Column("model_id", pa.string()), Column("sample_index", pa.int64()), *PRESENTATION,
    # carried over from labels that have it (math_answer): the path the sample was kept for
    Column("calc_path", STRINGS, required=False),
))

# --- pairs_* / groups_* .parquet (tasks/selection/preferences.py) ---------------------------------------------
PREFERENCE_PAIRS = RecordSchema("preference pairs", (
    Column("prompt_id", pa.string()), Column("prompt", pa.string()), Column("chosen", pa.string()),
    Column("rejected", pa.string()), *PRESENTATION,
))
BEST_RESPONSES = RecordSchema("best responses", (  # RRTF's fine-tuning target alone: its SFT control's data
    Column("prompt_id", pa.string()), Column("prompt", pa.string()), Column("completion", pa.string()),
    Column("score", pa.float64()), *PRESENTATION,
))
PREFERENCE_GROUPS = RecordSchema("preference groups", (
    Column("prompt_id", pa.string()), Column("prompt", pa.string()), Column("texts", STRINGS),
    Column("scores", pa.list_(pa.float64())),  # best first, one per text
    *PRESENTATION,
))

# --- rollouts.parquet (tasks/training/online_rl.py): what the policy saw and was rewarded for, per iteration ------
ROLLOUTS = RecordSchema("rollouts", (
    Column("iteration", pa.int64()), Column("prompt_id", pa.string()), Column("sample_index", pa.int64()),
    Column("text", pa.string()), Column("response_tokens", pa.int64()), Column("eos", pa.bool_()),
    Column("score", pa.float64()),  # the labellers' combined reward
    Column("reward", pa.float64()),  # what the update used: after the missing-EOS penalty and whitening
    Column("correct", pa.bool_()), Column("status", pa.string()), Column("advantage", pa.float64()),
    Column("sampler_logprob", pa.float64()),  # sum over the response, as the engine sampled it
))
