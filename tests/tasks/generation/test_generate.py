"""The generation stage: resume after the driver is killed, engine loss mid-shard, pooling models, bad input."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from generation_assets import commit_model, commit_prompts
from ray_cluster.model_inputs import ModelFolderError
from tasks.generation.generate import GenerateConfig, sample_completions
from tasks.core.stage_cache import StageContext
from tasks.core.store import ArtifactStore, StoreSpec

DRIVER = Path(__file__).with_name("generate_driver.py")


def _cfg(**sampling) -> GenerateConfig:
    return GenerateConfig(
        split="train", shard_size=2, engine={"backend": "hf", "batch_size": 2},
        pool={"num_engines": 1, "cpus_per_engine": 1},
        sampling={"n": 2, "temperature": 1.0, "max_tokens": 24, "ignore_eos": True, **sampling},
    )


def _rows(store: ArtifactStore, ref) -> list[dict]:
    return pq.read_table(store.local_path(ref) / "samples.parquet").to_pylist()


def _exactly_once(rows: list[dict], models: list[str], n_prompts: int, n: int) -> None:
    keys = Counter((r["model_id"], r["prompt_id"], r["sample_index"]) for r in rows)
    assert set(keys.values()) == {1}, [k for k, c in keys.items() if c > 1][:5]
    assert set(keys) == {(m, f"p{i:03d}", k) for m in models for i in range(n_prompts) for k in range(n)}


@pytest.mark.slow
def test_rerun_after_driver_kill_generates_only_missing_shards(tmp_path):
    store_spec = StoreSpec(url=str(tmp_path / "store"))
    store = ArtifactStore(store_spec)
    problems, model = commit_prompts(store, 40), commit_model(store)
    spec = {"ctx": {"store": store_spec.model_dump(), "ray": {"num_cpus": 2}, "show_progress": False},
            "cfg": _cfg().model_dump(mode="json"), "problems": problems.model_dump(),
            "models": {"tiny": model.model_dump()}}
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    parts_dir = Path(store.root) / "artifacts" / "sample_completions"

    def finished_parts() -> list[Path]:
        return [p for p in parts_dir.glob("*/parts/*.parquet") if ".tmp-" not in p.name]

    driver = subprocess.Popen([sys.executable, str(DRIVER), str(tmp_path / "spec.json")], start_new_session=True,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while len(finished_parts()) < 4 and driver.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    os.kill(driver.pid, signal.SIGKILL)  # the driver dies mid-stage, with no chance to clean up
    driver.wait()
    time.sleep(1)
    os.killpg(driver.pid, signal.SIGKILL)  # then its local Ray cluster (a lost head node, in effect)
    done_before = len(finished_parts())
    assert 4 <= done_before < 20, f"{done_before} of 20 shards finished before the kill; tune the test"

    rerun = subprocess.run([sys.executable, str(DRIVER), str(tmp_path / "spec.json")], capture_output=True,
                           text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    ref = store.lookup("sample_completions", json.loads(rerun.stdout.split("RESULT", 1)[1])["key"])
    metrics = store.manifest(ref)["metrics"]
    assert (metrics["shards_resumed"], metrics["shards_generated"]) == (done_before, 20 - done_before)
    _exactly_once(_rows(store, ref), ["tiny"], 40, 2)
    assert not finished_parts(), "parts are removed once the artifact is committed"


@pytest.mark.slow
def test_engine_killed_mid_shard_is_restarted_and_the_stage_completes(tmp_path, ray_local):
    import psutil

    store_spec = StoreSpec(url=str(tmp_path / "store"))
    store = ArtifactStore(store_spec)
    problems, model = commit_prompts(store, 24), commit_model(store)
    parts_dir = Path(store.root) / "artifacts" / "sample_completions"
    killed: list[int] = []

    def running_shards() -> list[psutil.Process]:
        # Ray titles a worker process "ray::<task>" while it runs a task; the state API reports task states up
        # to a second late, long enough for a tiny model's shards to be over before the kill (CI, 2026-12-01)
        return [p for p in psutil.process_iter(["cmdline"]) if (p.info["cmdline"] or [""])[0].startswith(
            "ray::generate_shard")]

    def kill_engine_after_first_shard() -> None:
        while not list(parts_dir.glob("*/parts/*.parquet")):
            time.sleep(0.02)
        # the next shard is dispatched right after the first is saved: kill the process generating it (the
        # transformers engine runs shards as Ray tasks in worker processes that keep it open)
        deadline = time.time() + 30
        while not killed and time.time() < deadline:
            for shard in running_shards():
                shard.kill()
                killed.append(shard.pid)
            time.sleep(0.01)

    killer = threading.Thread(target=kill_engine_after_first_shard, daemon=True)
    killer.start()
    ctx = StageContext(store=store_spec, show_progress=False)
    ref = sample_completions.fn("killed", problems, {"tiny": model}, _cfg(max_tokens=48), ctx)
    killer.join(timeout=5)
    assert killed, "the engine was never killed"
    _exactly_once(_rows(store, ref), ["tiny"], 24, 2)


@pytest.mark.slow
def test_samples_of_several_models_are_pooled_with_their_model_id(tmp_path, ray_local):
    store = ArtifactStore(StoreSpec(url=str(tmp_path / "store")))
    problems = commit_prompts(store, 6)
    models = {"seed0": commit_model(store, 0), "seed1": commit_model(store, 1)}
    ctx = StageContext(store=store.spec, show_progress=False)
    ref = sample_completions.fn("pooled", problems, models, _cfg(), ctx)
    rows = _rows(store, ref)
    _exactly_once(rows, ["seed0", "seed1"], 6, 2)
    text = {(r["model_id"], r["prompt_id"]): r["text"] for r in rows if r["sample_index"] == 0}
    assert any(text["seed0", p] != text["seed1", p] for p in {p for _, p in text}), "two models, same text"
    assert store.manifest(ref)["metrics"]["samples_per_model"] == {"seed0": 12, "seed1": 12}
    # the same stage with one model dropped is a different artifact, not a reuse
    single = sample_completions.fn("one", problems, {"seed0": models["seed0"]}, _cfg(), ctx)
    assert single.key != ref.key


def test_over_long_prompts_are_recorded_as_error_rows_not_raised(tmp_path, ray_local):
    store = ArtifactStore(StoreSpec(url=str(tmp_path / "store")))
    long_prompt = {"id": "p900", "prompt": "Tom has 1 apple. " * 80}  # > 256 positions of the tiny model
    problems, model = commit_prompts(store, 3, extra=[long_prompt]), commit_model(store)
    ctx = StageContext(store=store.spec, show_progress=False)
    ref = sample_completions.fn("long", problems, {"tiny": model}, _cfg(max_tokens=8), ctx)
    rows = _rows(store, ref)
    bad = [r for r in rows if r["prompt_id"] == "p900"]
    assert [r["finish_reason"] for r in bad] == ["error", "error"]
    assert "context is 256" in bad[0]["error"] and bad[0]["prompt_tokens"] > 256
    assert all(r["finish_reason"] == "length" and r["error"] is None for r in rows if r["prompt_id"] != "p900")
    assert store.manifest(ref)["metrics"]["errors"] == 2


def test_bad_model_folder_fails_before_any_engine_starts(tmp_path):
    import ray

    store = ArtifactStore(StoreSpec(url=str(tmp_path / "store")))
    problems = commit_prompts(store, 3)
    not_lm = tmp_path / "encoder"
    not_lm.mkdir()
    (not_lm / "config.json").write_text(json.dumps({"model_type": "bert", "architectures": ["BertModel"]}))
    no_config = tmp_path / "weights"
    no_config.mkdir()
    (no_config / "model.safetensors").write_bytes(b"x")
    ctx = StageContext(store=store.spec, show_progress=False)
    was_up = ray.is_initialized()
    for folder, expected in [(not_lm, r"\['BertModel'\] has no \*ForCausalLM head"), (no_config, "no config.json")]:
        ref = store.commit("test_model", folder.name, folder, {})
        with pytest.raises(ModelFolderError, match=expected) as err:
            sample_completions.fn("bad", problems, {"m": ref}, _cfg(), ctx)
        assert "model 'm'" in str(err.value)
    assert ray.is_initialized() == was_up, "no engine (nor Ray) was started for a bad model"


def test_empty_prompt_table_fails_with_the_table_named(tmp_path):
    store = ArtifactStore(StoreSpec(url=str(tmp_path / "store")))
    problems, model = commit_prompts(store, 0), commit_model(store)
    ctx = StageContext(store=store.spec, show_progress=False)
    with pytest.raises(ValueError, match=r"train.parquet has no prompts"):
        sample_completions.fn("empty", problems, {"tiny": model}, _cfg(), ctx)
