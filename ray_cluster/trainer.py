"""Training on Ray Train's TorchTrainer: every method, N workers, DDP (or FSDP) on CPU (gloo) or GPU (nccl).

Workers build the model (fresh tiny model, or from an HF folder; LoRA adapters by config), continue from the
newest complete checkpoint in the store when there is one, run models/train_loop.py, and write checkpoints to
the store: an HF folder (safetensors + config + tokenizer, loadable by transformers and vLLM as is) plus the
optimizer / scheduler / RNG / data-position state. The calling stage turns the final checkpoint into its artifact.
"""
from __future__ import annotations

import shutil
import tempfile
import threading
from pathlib import Path
from typing import Any, Callable

from pydantic import BaseModel, ConfigDict, field_validator, model_validator

from models.methods import LoraOptions, TrainConfig, TrainResources, get_method  # noqa: F401 (re-exported)
from ray_cluster.checkpoints import CheckpointPlace
from ray_cluster.folders import RemoteFolder


class TrainJob(BaseModel):
    """Everything a worker needs: `method` names the registry entry (models/methods/) that builds the model
    and the loop's method, `config` is that method's own typed config, `data` what its data builder made."""

    model_config = ConfigDict(arbitrary_types_allowed=True)
    method: str
    config: TrainConfig
    data: Any
    tokenizer: RemoteFolder
    init: RemoteFolder | None = None
    checkpoints: CheckpointPlace
    fault_at_step: int | None = None  # tests: the worker process dies right after this step

    @field_validator("method")
    @classmethod
    def _known(cls, name: str) -> str:
        get_method(name)  # raises naming the known methods
        return name

    @model_validator(mode="after")
    def _config_fits_method(self):
        expected = get_method(self.method).config
        if not isinstance(self.config, expected):
            raise ValueError(f"config: a {self.method!r} job takes a {expected.__name__}, got "
                             f"{type(self.config).__name__}")
        return self


def _train_loop(config: dict) -> None:
    import os

    import ray.train
    import ray.train.torch
    import torch

    from models.train_loop import run_training
    from ray_cluster.checkpoints import load_latest, save_checkpoint
    from ray_cluster.model_builder import build_for_job, trainable_model

    job: TrainJob = config["job"]
    torch.set_num_threads(config["threads"])
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    device = ray.train.torch.get_device()
    tokenizer, model, method = build_for_job(job)
    lora = job.config.lora is not None
    state = load_latest(job.checkpoints, model, lora)
    wrapped = ray.train.torch.prepare_model(trainable_model(job, model), parallel_strategy=config["strategy"])
    queue = config["progress"]

    def on_step(info) -> None:
        if rank == 0 and queue is not None:
            queue.put_nowait(info.metrics)
        if job.fault_at_step is not None and info.step == job.fault_at_step:
            os._exit(1)  # a crash, not an exception: nothing after this runs

    def on_checkpoint(st) -> None:
        save_checkpoint(job.checkpoints, model, tokenizer, st, rank, lora)

    final = run_training(wrapped, method, job.config.optim, device, rank, world, state, on_step, on_checkpoint)
    ray.train.report({"steps": final.step, "final_loss": final.history[-1]["loss"]})


def fit(job: TrainJob, on_progress: Callable[[dict], None] | None = None) -> None:
    """Run the job on Ray Train, with its config's `resources`, until its last checkpoint is written
    (`job.checkpoints`)."""
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer
    from ray.util.queue import Queue

    resources = job.config.resources
    queue = Queue() if on_progress else None
    scratch = tempfile.mkdtemp(prefix="winnow-train-")
    trainer = TorchTrainer(
        _train_loop,
        train_loop_config={"job": job, "threads": resources.cpus_per_worker, "progress": queue,
                           "strategy": resources.strategy},
        scaling_config=ScalingConfig(num_workers=resources.num_workers, use_gpu=resources.use_gpu,
                                     resources_per_worker={"CPU": resources.cpus_per_worker}),
        run_config=RunConfig(storage_path=scratch, name="train"),
    )
    outcome: dict = {}

    def run() -> None:
        try:
            outcome["result"] = trainer.fit()
        except BaseException as exc:  # re-raised below, in the calling thread
            outcome["error"] = exc

    runner = threading.Thread(target=run, daemon=True)
    runner.start()
    try:
        while runner.is_alive():
            runner.join(timeout=0.5)
            while queue is not None and not queue.empty():
                on_progress(queue.get_nowait())
        if "error" in outcome:
            raise outcome["error"]
        if outcome["result"].error:
            raise outcome["result"].error
    finally:
        if queue is not None:
            queue.shutdown()
        shutil.rmtree(scratch, ignore_errors=True)  # Ray Train's own run folder; our checkpoints are in the store
