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
from typing import Any, Callable, Literal

from pydantic import BaseModel, ConfigDict, Field

from models.optim import OptimConfig
from models.tiny_llama import ModelSize
from ray_cluster.checkpoints import CheckpointPlace
from ray_cluster.folders import RemoteFolder


class TrainResources(BaseModel):
    model_config = ConfigDict(extra="forbid")
    num_workers: int = Field(default=1, ge=1, description="data-parallel workers")
    use_gpu: bool = Field(default=False, description="one GPU per worker")
    cpus_per_worker: int = Field(default=2, ge=1, description="CPU threads each worker uses")
    strategy: Literal["ddp", "fsdp"] = Field(default="ddp", description="fsdp shards models that don't fit")


class LoraOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    r: int = Field(default=8, ge=1)
    alpha: int = Field(default=16, ge=1)
    dropout: float = Field(default=0.0, ge=0, lt=1)
    target_modules: list[str] = Field(default_factory=lambda: ["q_proj", "v_proj"], min_length=1)


class TrainJob(BaseModel):
    """Everything a worker needs. `method` picks the unit/loss (models/train_methods.py), `data` its rows."""

    model_config = ConfigDict(arbitrary_types_allowed=True)
    method: Literal["sft", "reward_model", "dpo", "rrtf"]
    data: Any
    options: dict = Field(default_factory=dict)  # batching / pack_len / loss_name / beta
    tokenizer: RemoteFolder
    init: RemoteFolder | None = None
    size: ModelSize = ModelSize()
    init_seed: int = 0
    optim: OptimConfig
    lora: LoraOptions | None = None
    checkpoints: CheckpointPlace
    fault_at_step: int | None = None  # tests: the worker process dies right after this step


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
    state = load_latest(job.checkpoints, model, job.lora is not None)
    wrapped = ray.train.torch.prepare_model(trainable_model(job, model), parallel_strategy=config["strategy"])
    queue = config["progress"]

    def on_step(info) -> None:
        if rank == 0 and queue is not None:
            queue.put_nowait(info.metrics)
        if job.fault_at_step is not None and info.step == job.fault_at_step:
            os._exit(1)  # a crash, not an exception: nothing after this runs

    def on_checkpoint(st) -> None:
        save_checkpoint(job.checkpoints, model, tokenizer, st, rank, job.lora is not None)

    final = run_training(wrapped, method, job.optim, device, rank, world, state, on_step, on_checkpoint)
    ray.train.report({"steps": final.step, "final_loss": final.history[-1]["loss"]})


def fit(job: TrainJob, resources: TrainResources, on_progress: Callable[[dict], None] | None = None) -> None:
    """Run the job on Ray Train until its last checkpoint is written (`job.checkpoints`)."""
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer
    from ray.util.queue import Queue

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
