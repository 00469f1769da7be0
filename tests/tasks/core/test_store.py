from __future__ import annotations

import json
from pathlib import Path

import pytest

from tasks.core.store import ArtifactStore
from tasks.core.tables import read_rows, write_rows


def _make_dir(tmp_path: Path, name: str, content: str) -> Path:
    folder = tmp_path / name
    (folder / "sub").mkdir(parents=True)
    (folder / "a.txt").write_text(content)
    (folder / "sub" / "b.txt").write_text(content * 2)
    return folder


def test_commit_then_lookup_roundtrip(store_spec, tmp_path):
    store = ArtifactStore(store_spec)
    assert store.lookup("stage", "k1") is None
    ref = store.commit("stage", "k1", _make_dir(tmp_path, "d", "hello"), {"metrics": {"rows": 2}})
    found = store.lookup("stage", "k1")
    assert found == ref
    local = store.local_path(found)
    assert (local / "a.txt").read_text() == "hello"
    assert (local / "sub" / "b.txt").read_text() == "hellohello"
    manifest = store.manifest(ref)
    assert manifest["metrics"] == {"rows": 2}
    assert manifest["files"] == ["a.txt", "sub/b.txt"]
    assert [m["key"] for m in store.list("stage")] == ["k1"]


def test_a_copied_store_reads_its_own_data_not_the_originals(tmp_path):
    from tasks.core.store import StoreSpec
    import shutil

    original = ArtifactStore(StoreSpec(url=str(tmp_path / "a")))
    original.commit("stage", "k1", _make_dir(tmp_path, "d", "hello"), {})
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    shutil.rmtree(tmp_path / "a")
    copy = ArtifactStore(StoreSpec(url=str(tmp_path / "b")))
    ref = copy.lookup("stage", "k1")
    assert ref.uri.startswith(str(tmp_path / "b"))
    assert (copy.local_path(ref) / "a.txt").read_text() == "hello"


def test_content_hash_follows_content(store_spec, tmp_path):
    store = ArtifactStore(store_spec)
    one = store.commit("s", "k1", _make_dir(tmp_path, "x", "same"), {})
    two = store.commit("s", "k2", _make_dir(tmp_path, "y", "same"), {})
    three = store.commit("s", "k3", _make_dir(tmp_path, "z", "different"), {})
    assert one.content_hash == two.content_hash != three.content_hash


def test_uncommitted_data_is_invisible(store_spec, tmp_path):
    """Files written without a manifest (a crashed attempt) are not an artifact; a later commit wins cleanly."""
    store = ArtifactStore(store_spec)
    partial = f"{store.root}/artifacts/s/k/data-crashed/a.txt"
    store.fs.makedirs(partial.rsplit("/", 1)[0], exist_ok=True)
    with store.fs.open(partial, "w") as fh:
        fh.write("half")
    assert store.lookup("s", "k") is None
    assert store.list("s") == []
    ref = store.commit("s", "k", _make_dir(tmp_path, "d", "whole"), {})
    assert (store.local_path(ref) / "a.txt").read_text() == "whole"


def test_empty_output_is_refused(store_spec, tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="produced no files"):
        ArtifactStore(store_spec).commit("s", "k", tmp_path / "empty", {})
    assert ArtifactStore(store_spec).lookup("s", "k") is None


def test_parquet_tables_are_readable_by_datasets(store_spec, tmp_path):
    import datasets

    store = ArtifactStore(store_spec)
    folder = tmp_path / "t"
    write_rows(folder / "train.parquet", [{"id": "a", "x": 1}, {"id": "b", "x": 2}])
    ref = store.commit("tables", "k", folder, {})
    assert read_rows(store, ref, "train") == [{"id": "a", "x": 1}, {"id": "b", "x": 2}]
    files = f"{ref.uri}/train.parquet"
    loaded = datasets.load_dataset("parquet", data_files=files, split="train",
                                   storage_options=json.loads(json.dumps(store_spec.storage_options)),
                                   streaming=not store.is_local)
    assert [row["x"] for row in loaded] == [1, 2]
    with pytest.raises(FileNotFoundError, match="no table 'test'"):
        read_rows(store, ref, "test")


def test_missing_bucket_fails_at_start_naming_it(s3_store_spec):
    from tasks.core.store import StoreSpec

    spec = StoreSpec(url="s3://no-such-bucket/x", storage_options=s3_store_spec.storage_options)
    with pytest.raises(FileNotFoundError, match="bucket 'no-such-bucket' does not exist"):
        ArtifactStore(spec).check()
    ArtifactStore(s3_store_spec).check()
