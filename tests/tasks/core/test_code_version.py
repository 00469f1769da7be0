"""Cache keys follow the code and the data: the import closure of a stage's module, and files read by location."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from tasks.core.code_version import PROJECT_PACKAGES, PROJECT_ROOT, import_closure, location_hash
from tasks.core.stage_cache import StageContext, run_stage
from tasks.core.store import StoreSpec

_DRIVER = """
import json, sys
sys.path.insert(0, sys.argv[1])
from tasks.core.stage_cache import StageContext
from tasks.core.store import ArtifactStore, StoreSpec
from tasks.data.prepare import TinyArithConfig, make_tiny_arith
ctx = StageContext(store=StoreSpec(url=sys.argv[2]), show_progress=False)
ref = make_tiny_arith.fn(TinyArithConfig(n_train=5, n_test=5), ctx)
manifest = ArtifactStore(ctx.store).manifest(ref)
print(json.dumps({"key": ref.key, "created_at": manifest["created_at"], "run_id": manifest["run_id"]}))
"""


def test_closure_follows_imports_including_function_level_ones():
    closure = import_closure("tasks.data.prepare")
    # prepare -> tiny_arith -> tiny_arith_text (two imports away); models.tokenizer only inside a function body
    assert {"tasks.data.tiny_arith", "tasks.data.tiny_arith_text", "models.tokenizer",
            "tasks.core.stage_cache", "tasks.core.store"} <= set(closure)
    assert "tasks.labelling.sandbox" not in closure and "tasks.training.train" not in closure
    # `from tasks.labelling import label_code` names a module, which is followed
    assert "tasks.labelling.label_code" in import_closure("tasks.labelling.label")


def _copy_project(root: Path) -> None:
    for package in PROJECT_PACKAGES:
        shutil.copytree(PROJECT_ROOT / package, root / package,
                        ignore=shutil.ignore_patterns("__pycache__"))


def _run(root: Path, store: Path) -> dict:
    out = subprocess.run([sys.executable, "-c", _DRIVER, str(root), str(store)], capture_output=True, text=True,
                         timeout=300, cwd=root)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_editing_a_dependency_two_imports_away_recomputes_the_stage(tmp_path):
    root, store = tmp_path / "project", tmp_path / "store"
    _copy_project(root)
    first = _run(root, store)
    assert _run(root, store) == first  # same code: the committed artifact is reused, not rewritten

    unrelated = root / "tasks/labelling/label_code.py"
    unrelated.write_text(unrelated.read_text() + "\n# an edit the stage does not import\n")
    assert _run(root, store) == first

    words = root / "tasks/data/tiny_arith_text.py"  # imported by tiny_arith, which prepare imports
    words.write_text(words.read_text() + "\nEXTRA_WORD = 'changed'\n")
    edited = _run(root, store)
    assert edited["key"] != first["key"]
    assert edited["created_at"] > first["created_at"]


def test_a_model_folder_given_by_location_is_keyed_by_content(tmp_path):
    model = tmp_path / "rm"
    model.mkdir()
    (model / "config.json").write_text("{}")
    (model / "model.safetensors").write_bytes(b"weights-v1")
    ctx = StageContext(store=StoreSpec(url=str(tmp_path / "store")), show_progress=False)
    calls = []

    def compute(out: Path) -> dict:
        calls.append(1)
        (out / "labels.txt").write_text((model / "model.safetensors").read_text())
        return {}

    first = run_stage(ctx, "score", {"n": 1}, {}, compute, reads={"model": str(model)})
    assert run_stage(ctx, "score", {"n": 1}, {}, compute, reads={"model": str(model)}) == first
    (model / "model.safetensors").write_bytes(b"weights-v2")  # retrained into the same place
    second = run_stage(ctx, "score", {"n": 1}, {}, compute, reads={"model": str(model)})
    assert len(calls) == 2 and second.key != first.key
    assert (Path(second.uri) / "labels.txt").read_text() == "weights-v2"


def test_location_hash_on_s3_and_missing_locations(s3_store_spec, tmp_path):
    import fsspec
    import pytest

    fs = fsspec.filesystem("s3", **s3_store_spec.storage_options)
    base = s3_store_spec.url.removeprefix("s3://")
    fs.pipe(f"{base}/rm/config.json", b"{}")
    before = location_hash(f"s3://{base}/rm", s3_store_spec.storage_options)
    assert location_hash(f"s3://{base}/rm", s3_store_spec.storage_options) == before
    fs.pipe(f"{base}/rm/config.json", b'{"changed": true}')
    fs.invalidate_cache()
    assert location_hash(f"s3://{base}/rm", s3_store_spec.storage_options) != before
    with pytest.raises(FileNotFoundError, match="not found"):
        location_hash(str(tmp_path / "nowhere"))
