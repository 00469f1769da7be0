import pytest

from tasks.core.stage_cache import StageContext
from tasks.core.store import ArtifactStore, StoreSpec
from tasks.core.tables import read_rows
from tasks.selection.select import (CRITERIA, SelectConfig, carried_fields, check_criteria_fields,
                                    drop_duplicate_calc_paths, keep_correct, select_per_prompt, select_samples,
                                    selected_rows)

from stored_tables import commit_table


def _row(pid, idx, correct, path, model="m"):
    return {"prompt_id": pid, "sample_index": idx, "model_id": model, "correct": correct, "calc_path": path,
            "text": f"{pid}-{idx}"}


def test_keep_correct_drops_wrong_answers():
    rows = [_row("p", 0, True, ["1+1=2"]), _row("p", 1, False, ["1+2=3"])]
    assert keep_correct(rows) == [rows[0]]


def test_distinct_paths_keep_first_of_each_path():
    rows = [_row("p", 0, True, ["3*4=12", "12+5=17"]), _row("p", 1, True, ["3*4=12", "12+5=17"]),
            _row("p", 2, True, ["4*3=12", "12+5=17"]), _row("p", 3, True, ["3*4=12"])]
    assert [r["sample_index"] for r in drop_duplicate_calc_paths(rows)] == [0, 2, 3]


def test_path_of_the_written_solution_counts_as_already_kept():
    rows = [_row("p", 0, True, ["3*4=12", "12+5=17"]), _row("p", 1, True, ["4*3=12", "12+5=17"])]
    for row in rows:
        row["reference_calc_path"] = ["3*4=12", "12+5=17"]
    assert [r["sample_index"] for r in drop_duplicate_calc_paths(rows)] == [1]


def test_select_per_prompt_applies_criteria_in_order_within_each_prompt():
    rows = [_row("b", 1, True, ["x"]), _row("a", 0, False, ["x"]), _row("a", 1, True, ["x"]),
            _row("a", 2, True, ["x"]), _row("b", 0, True, ["x"]), _row("a", 3, True, ["y"])]
    selected = select_per_prompt(rows, ["correct", "distinct_calc_path"])
    # the same path may be kept once per prompt; the wrong sample with path x never blocks a correct one
    assert {pid: [r["sample_index"] for r in kept] for pid, kept in selected.items()} == {"a": [1, 3], "b": [0]}


def test_prompt_with_no_correct_sample_selects_nothing():
    assert select_per_prompt([_row("p", 0, False, [])], ["correct"]) == {"p": []}


def test_unknown_criterion_is_a_config_error():
    with pytest.raises(ValueError, match="unknown criteria \\['nope'\\]"):
        SelectConfig(criteria=["correct", "nope"])
    assert {"correct", "distinct_calc_path"} <= set(CRITERIA)


def test_valid_calculations_drops_samples_with_wrong_arithmetic():
    rows = [_row("p", 0, True, ["3*4=12", "12+5=17"]), _row("p", 1, True, ["3*4=11", "11+6=17"]),
            _row("p", 2, True, []), _row("p", 3, True, ["10/4=2.5"]), _row("p", 4, True, ["3*x=12"])]
    assert [r["sample_index"] for r in CRITERIA["valid_calculations"](rows)] == [0, 2, 3]


def test_grounded_calculations_drops_paths_with_numbers_from_nowhere():
    rows = [_row("p", 0, True, ["x"]), _row("p", 1, True, ["y"]), _row("p", 2, True, ["z"])]
    rows[0]["grounded"], rows[1]["grounded"], rows[2]["grounded"] = True, False, None  # None: not checkable
    assert [r["sample_index"] for r in CRITERIA["grounded_calculations"](rows)] == [0, 2]


# --- labels without a labeller's fields (issue 12, item 3) --------------------------------------------------------
def _unit_test_label(pid, idx, passed):
    """A row of unit_tests labels: the core label columns only, no calc_path / grounded."""
    return {"prompt_id": pid, "sample_index": idx, "model_id": "m", "text": f"    return {idx}\n", "error": None,
            "pred": None, "correct": passed, "reward": float(passed), "status": "pass" if passed else "fail",
            "reward_unit_tests": float(passed), "program_wall_s": 0.04}


def test_selection_over_unit_test_labels_needs_no_calc_path():
    rows = [_unit_test_label("f", 0, False), _unit_test_label("f", 1, True), _unit_test_label("g", 0, True)]
    selected = select_per_prompt(rows, ["correct"])
    assert {pid: [r["sample_index"] for r in kept] for pid, kept in selected.items()} == {"f": [1], "g": [0]}
    out = selected_rows(selected, {"f": {"prompt": "def f():\n"}, "g": {"prompt": "def g():\n"}}, carried_fields(rows))
    assert out[0] == {"prompt_id": "f", "prompt": "def f():\n", "completion": "    return 1\n", "model_id": "m",
                      "sample_index": 1}  # no calc_path column: the labels have none


@pytest.mark.parametrize("criterion, field", [("distinct_calc_path", "calc_path"), ("valid_calculations", "calc_path"),
                                              ("grounded_calculations", "grounded")])
def test_criteria_needing_a_labeller_field_name_it_when_labels_lack_it(criterion, field):
    rows = [_unit_test_label("f", 0, True)]
    with pytest.raises(ValueError, match=f"select.criteria: '{criterion}' needs the label field '{field}', which "
                                         "the labels do not have"):
        select_per_prompt(rows, ["correct", criterion])


def test_criteria_fields_are_checked_against_a_label_config_before_anything_runs():
    from tasks.labelling.label import LabelConfig

    check_criteria_fields(["correct", "distinct_calc_path"], LabelConfig(labeller="math_answer").output_schema().names)
    with pytest.raises(ValueError, match="'distinct_calc_path' needs the label field 'calc_path'"):
        check_criteria_fields(["correct", "distinct_calc_path"],
                              LabelConfig(labeller="unit_tests").output_schema().names, "unit_tests labels")


def test_a_sample_without_the_field_is_named():
    """A failure label (or a math_hybrid program-of-thought row) has no calc_path while the others do."""
    rows = [_row("p", 0, True, ["1+1=2"]), _row("p", 1, True, None)]
    with pytest.raises(ValueError, match="'distinct_calc_path' needs the label field 'calc_path', which sample 1 of "
                                         "prompt 'p' \\(model 'm'\\) does not have"):
        select_per_prompt(rows, ["distinct_calc_path"])


def test_select_samples_stage_on_unit_test_labels(tmp_path):
    store = ArtifactStore(StoreSpec(url=str(tmp_path / "store")))
    problems = commit_table(store, "problems", "train", [{"id": "f", "prompt": "def f():\n"},
                                                    {"id": "g", "prompt": "def g():\n"}], tmp_path)
    labels = commit_table(store, "labels", "labels", [_unit_test_label("f", 0, False), _unit_test_label("f", 1, True),
                                                 _unit_test_label("g", 0, True)], tmp_path)
    ctx = StageContext(store=store.spec, show_progress=False)
    ref = select_samples.fn([labels], problems, SelectConfig(criteria=["correct"]), ctx)
    rows = read_rows(store, ref, "selected")
    assert [(r["prompt_id"], r["sample_index"]) for r in rows] == [("f", 1), ("g", 0)]
    assert set(rows[0]) == {"prompt_id", "prompt", "completion", "model_id", "sample_index"}
    with pytest.raises(ValueError, match=f"'distinct_calc_path' needs the label field 'calc_path', which labels "
                                         f"{labels.short} do not have"):
        select_samples.fn([labels], problems, SelectConfig(criteria=["correct", "distinct_calc_path"]), ctx)


def test_select_samples_stage_on_math_labels_keeps_calc_path(tmp_path):
    store = ArtifactStore(StoreSpec(url=str(tmp_path / "store")))
    problems = commit_table(store, "problems", "train", [{"id": "p", "prompt": "Question: ?\nAnswer:"}], tmp_path)
    rows = [_row("p", 0, True, ["3*4=12"]) | {"grounded": True}, _row("p", 1, True, ["3*4=12"]) | {"grounded": True},
            _row("p", 2, True, ["4*3=12"]) | {"grounded": True}]
    labels = commit_table(store, "labels", "labels", rows, tmp_path)
    ctx = StageContext(store=store.spec, show_progress=False)
    ref = select_samples.fn([labels], problems, SelectConfig(), ctx)
    selected = read_rows(store, ref, "selected")
    assert selected == [{"prompt_id": "p", "prompt": "Question: ?\nAnswer:", "completion": f"p-{i}", "model_id": "m",
                         "sample_index": i, "calc_path": path} for i, path in [(0, ["3*4=12"]), (2, ["4*3=12"])]]
