"""Typed records between stages (issue 12, item 3): rows are checked when written, errors name the table, the row
and the field, labeller extensions round-trip through Parquet, and existing tables are stored as before."""
from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ray_cluster.generation import CompletionRecord
from tasks.core.records import (CODE_PROBLEMS, LABELS, MATH_PROBLEMS, PREFERENCE_GROUPS, SAMPLES, SELECTIONS, Column,
                                RecordError, RecordSchema)
from tasks.core.tables import write_records
from tasks.labelling import label_code, label_math  # noqa: F401  (they register their labellers)
from tasks.labelling.labellers import LABELLER_FIELDS, ROW_LABELLERS, labels_schema, register_labeller


def _label(**extra) -> dict:
    return {"prompt_id": "p", "sample_index": 0, "model_id": "m", "text": " #### 17", "error": None, "pred": "17",
            "correct": True, "reward": 1.0, "status": "answered", "reward_math_answer": 1.0} | extra


def test_missing_field_is_rejected_naming_table_row_and_field(tmp_path):
    rows = [_label(), _label(sample_index=1)]
    del rows[1]["reward"]
    with pytest.raises(RecordError, match=r"labels\.parquet .*row 1: field 'reward' is missing") as info:
        write_records(tmp_path / "labels.parquet", rows, labels_schema(["math_answer"]))
    assert (info.value.row, info.value.field) == (1, "reward")
    assert not (tmp_path / "labels.parquet").exists()  # nothing written


def test_mistyped_field_is_rejected_naming_table_row_and_field(tmp_path):
    rows = [_label(), _label(sample_index=1), _label(sample_index="2")]
    with pytest.raises(RecordError, match=r"labels\.parquet .*row 2: field 'sample_index' is a str .*expected int64"):
        write_records(tmp_path / "labels.parquet", rows, labels_schema(["math_answer"]))
    rows = [_label(calc_path=["1+1=2"]), _label(calc_path="1+1=2")]
    with pytest.raises(RecordError, match=r"row 1: field 'calc_path' is a str .*expected list<item: string>"):
        write_records(tmp_path / "labels.parquet", rows, labels_schema(["math_answer"]))
    with pytest.raises(RecordError, match=r"row 0: field 'correct' is an int .*expected bool"):
        write_records(tmp_path / "labels.parquet", [_label(correct=1)], labels_schema(["math_answer"]))


def test_undeclared_field_and_none_in_a_required_field_are_rejected(tmp_path):
    row = _label(reward_unit_tests=1.0, calc_path=[])
    del row["reward_math_answer"]
    with pytest.raises(RecordError, match=r"row 0: field 'calc_path' is not declared in the labels of unit_tests "
                                          r"schema .*register_labeller\(name, fields="):
        write_records(tmp_path / "l.parquet", [row], labels_schema(["unit_tests"]))
    rows = [{"prompt_id": "p", "prompt": "q", "completion": "c", "model_id": "m", "sample_index": 0},
            {"prompt_id": "p", "prompt": None, "completion": "c", "model_id": "m", "sample_index": 1}]
    with pytest.raises(RecordError, match=r"selected\.parquet \(selections\), row 1: field 'prompt' is None"):
        write_records(tmp_path / "selected.parquet", rows, SELECTIONS)


def test_problem_sets_are_open_but_their_declared_fields_are_typed(tmp_path):
    math = {"id": "a", "prompt": "Q", "question": "q", "answer": "#### 3", "final": "3", "level": 2, "source": "x"}
    assert write_records(tmp_path / "train.parquet", [math], MATH_PROBLEMS) == 1  # `source`: a dataset's own field
    with pytest.raises(RecordError, match=r"train\.parquet \(math problems\), row 0: field 'final' is an int"):
        write_records(tmp_path / "train.parquet", [math | {"final": 3}], MATH_PROBLEMS)
    with pytest.raises(RecordError, match=r"row 0: field 'entry_point' is missing"):
        write_records(tmp_path / "test.parquet", [{"id": "c", "prompt": "def f():\n", "test": "..."}], CODE_PROBLEMS)


def test_labeller_extension_fields_round_trip_through_parquet(tmp_path):
    assert [c.name for c in LABELLER_FIELDS["math_answer"]] == ["calc_path", "reference_calc_path", "grounded"]
    rows = [_label(calc_path=["3*4=12", "12+5=17"], reference_calc_path=None, grounded=True),
            # a failure label (the row could not be judged) has only the core fields
            _label(sample_index=1, correct=False, reward=0.0, reward_math_answer=0.0, pred=None, status="error",
                   error="row 1: KeyError")]
    schema = labels_schema(["math_answer"])
    write_records(tmp_path / "labels.parquet", rows, schema)
    table = pq.read_table(tmp_path / "labels.parquet")
    assert table.schema.field("calc_path").type == pa.list_(pa.string())
    assert table.schema.field("grounded").type == pa.bool_()
    back = table.to_pylist()
    assert back[0]["calc_path"] == ["3*4=12", "12+5=17"] and back[0]["grounded"] is True
    assert back[1]["calc_path"] is None and back[1]["status"] == "error"


def test_a_new_labeller_declares_its_fields_where_it_registers(tmp_path):
    @register_labeller("test_length", fields={"n_chars": pa.int64()})
    def label_length(completion, problem, options):  # pragma: no cover - only its registration is used
        return {}

    try:
        _write_with_new_labeller(tmp_path)
    finally:
        del ROW_LABELLERS["test_length"], LABELLER_FIELDS["test_length"]


def _write_with_new_labeller(tmp_path):
    schema = labels_schema(["test_length", "math_answer"])
    # the first labeller's fields, then `reward_<name>` for each labeller
    assert {"n_chars", "reward_test_length", "reward_math_answer"} <= set(schema.names)
    assert "calc_path" not in schema.names  # only the first labeller's fields are in the combined row
    rows = [_label(reward_test_length=1.0, n_chars=8)]
    write_records(tmp_path / "labels.parquet", rows, schema)
    assert pq.read_table(tmp_path / "labels.parquet").to_pylist()[0]["n_chars"] == 8
    with pytest.raises(ValueError, match="'status' is declared twice"):
        register_labeller("test_bad", fields={"status": pa.string()})


def test_samples_are_the_completion_record_stored_with_fixed_types(tmp_path):
    assert SAMPLES.names == list(CompletionRecord.model_fields)
    assert {c.name for c in SAMPLES.columns if not c.required} == {"stop_reason", "cumulative_logprob", "error"}
    record = CompletionRecord(prompt_id="p", sample_index=0, model_id="m", text="x", prompt_tokens=3,
                              completion_tokens=1, finish_reason="stop", gen_s=0.5)
    write_records(tmp_path / "samples.parquet", [record.model_dump()], SAMPLES)
    # an all-None column keeps its declared type, so shards concatenate
    assert pq.read_table(tmp_path / "samples.parquet").schema == SAMPLES.arrow()
    assert LABELS.names[: len(SAMPLES.names)] == SAMPLES.names


def test_storage_is_unchanged_for_existing_tables(tmp_path):
    """Same rows, same bytes as the untyped writer: inferred types, first row's column order (issue 12, item 4)."""
    rows = [_label(calc_path=[], reference_calc_path=["1+1=2"], grounded=None, cumulative_logprob=None),
            _label(sample_index=1, calc_path=["2*2=4"], reference_calc_path=["1+1=2"], grounded=None,
                   cumulative_logprob=None)]
    write_records(tmp_path / "new.parquet", rows, labels_schema(["math_answer"]))
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "old.parquet")
    assert (tmp_path / "new.parquet").read_bytes() == (tmp_path / "old.parquet").read_bytes()


def test_empty_tables_keep_their_columns_and_whole_numbers_are_stored_as_floats(tmp_path):
    assert write_records(tmp_path / "groups.parquet", [], PREFERENCE_GROUPS) == 0
    assert pq.read_table(tmp_path / "groups.parquet").schema.names == ["prompt_id", "prompt", "texts", "scores",
                                                                       "system", "chat_template"]
    group = {"prompt_id": "p", "prompt": "q", "texts": ["a", "b"], "scores": [1, 0]}
    write_records(tmp_path / "groups.parquet", [group], PREFERENCE_GROUPS)
    assert pq.read_table(tmp_path / "groups.parquet").schema.field("scores").type == pa.list_(pa.float64())
    schema = RecordSchema("t", (Column("x", pa.float64()),))
    write_records(tmp_path / "t.parquet", [{"x": 1}, {"x": 2}], schema)
    assert pq.read_table(tmp_path / "t.parquet").schema.field("x").type == pa.float64()


def test_columns_only_later_rows_have_are_kept():
    """pa.Table.from_pylist takes the columns from the first row; a failure label first dropped them."""
    rows = [_label(pred=None), _label(sample_index=1, calc_path=["1+1=2"])]
    table = labels_schema(["math_answer"]).to_table(rows, "labels.parquet")
    assert table.column("calc_path").to_pylist() == [None, ["1+1=2"]]
