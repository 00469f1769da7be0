from tasks.selection.select import CRITERIA, SelectConfig, drop_duplicate_calc_paths, keep_correct, select_per_prompt

import pytest


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
