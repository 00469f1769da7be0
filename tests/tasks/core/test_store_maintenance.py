"""`winnow store verify` and `winnow store gc`, on a local store and on S3: a corrupted and a truncated artifact
are found (and quarantined, so the stage recomputes), crashed attempts and committed stages' parts are
collected after the grace period and not before."""
from __future__ import annotations

import json
from pathlib import Path

from tasks.core.store import ArtifactStore
from tasks.core.store_maintenance import collect_garbage, verify


def _commit(store: ArtifactStore, tmp_path: Path, key: str, text: str):
    local = tmp_path / key
    local.mkdir()
    (local / "table.txt").write_text(text)
    (local / "sub").mkdir()
    (local / "sub" / "more.txt").write_text(text * 2)
    return store.commit("stage_a", key, local, {"metrics": {}})


def _overwrite(store: ArtifactStore, ref, rel: str, data: bytes) -> None:
    path = f"{ref.uri.split('://', 1)[-1] if not store.is_local else ref.uri}/{rel}"
    with store.fs.open(path, "wb") as fh:
        fh.write(data)


def test_verify_finds_corrupted_and_truncated_artifacts_and_quarantines_them(store_spec, tmp_path):
    store = ArtifactStore(store_spec)
    good = _commit(store, tmp_path, "good", "intact")
    corrupted = _commit(store, tmp_path, "corrupt", "original")
    truncated = _commit(store, tmp_path, "trunc", "0123456789")
    _overwrite(store, corrupted, "table.txt", b"origiNal")  # same size, one byte flipped
    _overwrite(store, truncated, "sub/more.txt", b"01234")
    assert not [f for f in verify(store) if f.key == good.key and f.problem]
    problems = {f.key: f.problem for f in verify(store) if f.problem}
    assert set(problems) == {corrupted.key, truncated.key}
    assert all("content hash" in p for p in problems.values())
    quarantined = verify(store, quarantine=True)
    assert sorted(f.key for f in quarantined if f.quarantined) == sorted([corrupted.key, truncated.key])
    # set aside: lookups no longer trust them (the next run recomputes), the good one is untouched
    assert store.lookup("stage_a", corrupted.key) is None and store.lookup("stage_a", truncated.key) is None
    assert store.lookup("stage_a", good.key) == good
    assert [f for f in verify(store) if f.problem] == []


def test_verify_reports_a_missing_file(store_spec, tmp_path):
    store = ArtifactStore(store_spec)
    ref = _commit(store, tmp_path, "k", "x")
    store.fs.rm(f"{ref.uri.split('://', 1)[-1] if not store.is_local else ref.uri}/sub/more.txt")
    [finding] = verify(store)
    assert finding.problem == "1 file(s) missing, e.g. sub/more.txt"


def test_gc_removes_orphan_attempts_and_committed_parts_after_the_grace_period(store_spec, tmp_path):
    store = ArtifactStore(store_spec)
    ref = _commit(store, tmp_path, "k", "committed")
    folder = store._artifact_dir("stage_a", "k")
    crashed = f"{folder}/data-deadbeef0000"  # an attempt that died before writing its manifest
    store.fs.makedirs(crashed, exist_ok=True)
    store.fs.pipe(f"{crashed}/half.txt", b"partial")
    part = tmp_path / "p.parquet"
    part.write_bytes(b"shard")
    store.put_part("stage_a", "k", "shard-0.parquet", part)  # a part left behind after the commit
    store.put_part("stage_b", "running", "shard-0.parquet", part)  # a stage still running: no manifest
    young = collect_garbage(store, dry_run=True, grace_s=3600)
    assert young.paths == [] and young.kept_young == 2
    planned = collect_garbage(store, dry_run=True, grace_s=0)
    assert sorted(p.rsplit("/", 1)[-1] for p in planned.paths) == ["data-deadbeef0000", "parts"]
    assert store.fs.exists(f"{crashed}/half.txt")  # a dry run removes nothing
    done = collect_garbage(store, dry_run=False, grace_s=0)
    assert done.paths == planned.paths and done.bytes == len(b"partial") + len(b"shard")
    assert not store.fs.exists(crashed) and not store.list_parts("stage_a", "k")
    assert store.list_parts("stage_b", "running")  # an uncommitted stage's parts are its resume point: kept
    assert [f for f in verify(store) if f.problem] == [] and store.lookup("stage_a", "k") == ref
    assert json.loads(store.fs.cat(f"{folder}/manifest.json"))["data_uri"] == ref.uri
