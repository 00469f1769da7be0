"""Training stages on Ray Train: resume after a worker dies, DDP equals one worker, LoRA, S3 checkpoints, and
config errors before any worker starts."""
from __future__ import annotations

import tempfile
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import torch

from generation_assets import TEXTS, commit_folder
from models.tokenizer import build_digit_tokenizer
from tasks.core.stage_cache import StageContext
from tasks.core.store import ArtifactStore, StoreSpec
from tasks.core.tables import write_rows
from tasks.training.train import DPOTrainConfig, SFTConfig, SFTSource, train_sft

SMALL = {"hidden_size": 32, "num_layers": 2, "num_heads": 2, "intermediate_size": 64, "max_positions": 128}


def _assets(store: ArtifactStore):
    with tempfile.TemporaryDirectory() as tmp:
        build_digit_tokenizer(TEXTS).save_pretrained(tmp)
        tokenizer = commit_folder(store, "test_tokenizer", "t", Path(tmp))
    with tempfile.TemporaryDirectory() as tmp:
        rows = [{"prompt": t.split("Answer:")[0] + "Answer:", "completion": t.split("Answer:")[1]} for t in TEXTS]
        write_rows(Path(tmp) / "train.parquet", rows)
        data = commit_folder(store, "test_sft_data", "d", Path(tmp))
    return tokenizer, SFTSource(ref=data, split="train")


def _cfg(**kw) -> SFTConfig:
    base = {"model": SMALL, "optim": {"steps": 12, "batch_size": 8, "lr": 3e-3, "warmup_steps": 2,
                                      "checkpoint_every": 5, "max_len": 96},
            "resources": {"num_workers": 1, "cpus_per_worker": 1}}
    for key, value in kw.items():
        base[key] = base.get(key, {}) | value if isinstance(value, dict) else value
    return SFTConfig(**base)


def _run(tmp_path, name: str, cfg: SFTConfig, monkeypatch=None, fault: int | None = None):
    store = ArtifactStore(StoreSpec(url=str(tmp_path / name)))
    tokenizer, source = _assets(store)
    ctx = StageContext(store=store.spec, show_progress=False)
    if fault is not None:
        monkeypatch.setenv("WINNOW_FAULT_AT_STEP", str(fault))
        with pytest.raises(Exception):
            train_sft.fn("m", [source], tokenizer, None, cfg, ctx)
        monkeypatch.delenv("WINNOW_FAULT_AT_STEP")
    ref = train_sft.fn("m", [source], tokenizer, None, cfg, ctx)
    folder = store.local_path(ref)
    return store.manifest(ref)["metrics"], pq.read_table(folder / "metrics.parquet").to_pylist(), folder


def _weights(folder: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(folder / "model.safetensors")


@pytest.mark.slow
def test_killed_worker_resumes_at_the_exact_data_position(tmp_path, ray_local, monkeypatch):
    cfg = _cfg(batching="packed", pack_len=96)
    _, straight, straight_dir = _run(tmp_path, "straight", cfg)
    metrics, resumed, resumed_dir = _run(tmp_path, "killed", cfg, monkeypatch, fault=8)
    assert metrics["resumed_from_step"] == 5  # died after step 8; the last complete checkpoint was step 5
    assert [h["step"] for h in resumed] == list(range(1, 13))  # the curve continues, no step twice
    assert [h["loss"] for h in resumed] == pytest.approx([h["loss"] for h in straight], abs=1e-6)
    a, b = _weights(straight_dir), _weights(resumed_dir)
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)


@pytest.mark.slow
def test_two_ddp_workers_match_one_worker_on_the_same_global_batch(tmp_path, ray_local):
    _, one, one_dir = _run(tmp_path, "one", _cfg())
    _, two, two_dir = _run(tmp_path, "two", _cfg(resources={"num_workers": 2}))
    assert [h["loss"] for h in two] == pytest.approx([h["loss"] for h in one], abs=1e-4)
    a, b = _weights(one_dir), _weights(two_dir)
    assert all(torch.allclose(a[k], b[k], atol=1e-4) for k in a)


@pytest.mark.slow
def test_lora_trains_adapters_and_saves_a_plain_merged_model(tmp_path, ray_local):
    metrics, history, folder = _run(tmp_path, "lora", _cfg(lora={"r": 4, "target_modules": ["q_proj", "v_proj"]},
                                                           optim={"lr": 1e-2}))
    assert history[-1]["loss"] < history[0]["loss"]
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(folder)  # no peft needed to load it
    assert not any("lora" in name for name, _ in model.named_parameters())


def test_bad_configs_fail_before_any_worker_starts(tmp_path):
    with pytest.raises(ValueError, match=r"optim.loss: unknown loss 'nope' for method 'sft'; allowed: \['sft'\]"):
        _cfg(optim={"loss": "nope"})
    with pytest.raises(ValueError, match=r"optim.loss: 'dpo' does not train method 'sft'; allowed: \['sft'\]"):
        _cfg(optim={"loss": "dpo"})
    with pytest.raises(ValueError, match="not divisible by resources.num_workers x optim.grad_accum = 6"):
        _cfg(resources={"num_workers": 2}, optim={"grad_accum": 3})
    store = ArtifactStore(StoreSpec(url=str(tmp_path / "bad")))
    tokenizer, source = _assets(store)
    ctx = StageContext(store=store.spec, show_progress=False)
    with pytest.raises(ValueError, match=r"lora.target_modules: \['qkv'\] not in the model"):
        train_sft.fn("m", [source], tokenizer, None, _cfg(lora={"target_modules": ["qkv"]}), ctx)
    with pytest.raises(TypeError, match="train_sft: cfg is a DPOTrainConfig; method 'sft' takes a SFTConfig"):
        train_sft.fn("m", [source], tokenizer, None, DPOTrainConfig(), ctx)
    assert not list((tmp_path / "bad").rglob("checkpoints")) and store.list("train_sft") == []  # nothing started


def test_train_job_takes_a_registered_method_and_its_own_config(tmp_path):
    from pydantic import ValidationError

    from ray_cluster.checkpoints import CheckpointPlace
    from ray_cluster.folders import RemoteFolder
    from ray_cluster.trainer import TrainJob

    common = {"data": [], "tokenizer": RemoteFolder(uri=str(tmp_path)),
              "checkpoints": CheckpointPlace(uri=str(tmp_path))}
    assert TrainJob(method="dpo", config=DPOTrainConfig(beta=0.3), **common).config.beta == 0.3  # typed to the worker
    with pytest.raises(ValidationError, match=r"method: unknown training method 'ppo'; known: \['dpo', "):
        TrainJob(method="ppo", config=DPOTrainConfig(), **common)
    with pytest.raises(ValidationError, match="config: a 'sft' job takes a SFTConfig, got DPOTrainConfig"):
        TrainJob(method="sft", config=DPOTrainConfig(), **common)


def test_checkpoint_on_s3_reloads_in_transformers_with_identical_logits(s3_store_spec, tmp_path):
    from transformers import AutoModelForCausalLM

    from models.tiny_llama import ModelSize, build_tiny_llama
    from models.train_loop import TrainState
    from ray_cluster.checkpoints import CheckpointPlace, fetch_model, load_latest, save_checkpoint

    tokenizer = build_digit_tokenizer(TEXTS)
    model = build_tiny_llama(ModelSize(**SMALL), tokenizer, seed=3).eval()
    place = CheckpointPlace(uri=f"{s3_store_spec.url}/ckpt", storage_options=s3_store_spec.storage_options)
    save_checkpoint(place, model, tokenizer, TrainState(step=7, history=[{"loss": 1.0}]), rank=0, lora=False)
    fetch_model(place, 7, tmp_path / "hf")
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path / "hf").eval()
    ids = torch.tensor([tokenizer.encode(TEXTS[0])])
    with torch.no_grad():
        assert torch.equal(reloaded(ids).logits, model(ids).logits)
    fresh = build_tiny_llama(ModelSize(**SMALL), tokenizer, seed=99)
    state = load_latest(place, fresh, lora=False)
    assert state.step == 7 and state.history == [{"loss": 1.0}]
    assert all(torch.equal(a, b) for a, b in zip(fresh.state_dict().values(), model.state_dict().values()))


@pytest.mark.slow
def test_a_training_stage_sends_its_committed_curve_to_mlflow(tmp_path, ray_local):
    mlflow = pytest.importorskip("mlflow")
    from tasks.core.tracking import TrackingConfig

    store = ArtifactStore(StoreSpec(url=str(tmp_path / "s")))
    tokenizer, source = _assets(store)
    tracking = TrackingConfig(mlflow_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    ctx = StageContext(store=store.spec, show_progress=False, run_id="run-1", tracking=tracking)
    ref = train_sft.fn("m", [source], tokenizer, None, _cfg(), ctx)
    committed = pq.read_table(store.local_path(ref) / "metrics.parquet").to_pylist()
    client = mlflow.MlflowClient(tracking_uri=tracking.mlflow_uri)
    [run] = client.search_runs([client.get_experiment_by_name("winnow").experiment_id])
    loss = sorted(client.get_metric_history(run.info.run_id, "loss"), key=lambda m: m.step)
    assert [(m.step, m.value) for m in loss] == [(h["step"], pytest.approx(h["loss"])) for h in committed]
    assert run.data.tags["winnow.run_id"] == "run-1" and run.data.params["optim.steps"] == "12"
    train_sft.fn("m", [source], tokenizer, None, _cfg(), ctx)  # reused: nothing logged twice
    assert len(client.search_runs([run.info.experiment_id])) == 1
