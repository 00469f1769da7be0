"""SFT through Ray Train's TorchTrainer: the same code on CPU workers (gloo) and GPU workers (nccl).

Workers build or load the model, run the plain-torch loop from `models.sft_train`, and report one checkpoint
(an HF folder) from rank 0. The calling stage copies that folder into the artifact store.
"""
from __future__ import annotations

import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable

from pydantic import BaseModel, ConfigDict, Field

from models.sft_data import TokenizedExample
from models.sft_train import OptimConfig
from models.tiny_llama import ModelSize
from ray_cluster.folders import RemoteFolder


class TrainResources(BaseModel):
    model_config = ConfigDict(extra="forbid")
    num_workers: int = Field(default=1, ge=1, description="data-parallel workers")
    use_gpu: bool = Field(default=False, description="one GPU per worker")
    cpus_per_worker: int = Field(default=2, ge=1, description="CPU threads each worker uses")


class SFTJob(BaseModel):
    """Everything a worker needs; `init` is a model folder to continue from, else a fresh model is built."""

    model_config = ConfigDict(arbitrary_types_allowed=True)
    tokenizer: RemoteFolder
    init: RemoteFolder | None = None
    size: ModelSize = ModelSize()
    init_seed: int = 0
    optim: OptimConfig
    examples: list[TokenizedExample]


def _train_loop(config: dict) -> None:
    import ray.train
    import ray.train.torch
    import torch
    from transformers import AutoTokenizer

    from models.sft_train import run_sft
    from models.tiny_llama import build_tiny_llama, load_model_folder, save_model_folder
    from ray_cluster.folders import materialize

    job: SFTJob = config["job"]
    torch.set_num_threads(config["threads"])
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    tokenizer = AutoTokenizer.from_pretrained(materialize(job.tokenizer))
    if job.init is not None:
        model, _ = load_model_folder(materialize(job.init))
    else:
        model = build_tiny_llama(job.size, tokenizer, seed=job.init_seed)
    model = ray.train.torch.prepare_model(model)
    queue = config["progress"]
    last = [0.0]

    def on_step(step: int, loss: float, lr: float) -> None:
        if rank == 0 and queue is not None and (time.time() - last[0] > 0.5 or step == job.optim.steps - 1):
            last[0] = time.time()
            queue.put_nowait((step + 1, loss))

    losses = run_sft(model, job.examples, job.optim, tokenizer.pad_token_id, ray.train.torch.get_device(),
                     rank=rank, world=world, on_step=on_step)
    tail = losses[-min(20, len(losses)):]
    metrics = {"final_loss": sum(tail) / len(tail), "first_loss": losses[0], "steps": len(losses)}
    if rank == 0:
        with tempfile.TemporaryDirectory() as tmp:
            plain = model.module if hasattr(model, "module") else model
            save_model_folder(plain, tokenizer, Path(tmp))
            ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(tmp))
    else:
        ray.train.report(metrics)


def fit_sft(
    job: SFTJob, resources: TrainResources, out_dir: Path, on_progress: Callable[[int, float], None] | None = None
) -> dict:
    """Run the job on Ray Train; writes the trained HF folder to `out_dir` and returns its metrics."""
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer
    from ray.util.queue import Queue

    queue = Queue() if on_progress else None
    scratch = tempfile.mkdtemp(prefix="winnow-train-")
    trainer = TorchTrainer(
        _train_loop,
        train_loop_config={"job": job, "threads": resources.cpus_per_worker, "progress": queue},
        scaling_config=ScalingConfig(
            num_workers=resources.num_workers, use_gpu=resources.use_gpu,
            resources_per_worker={"CPU": resources.cpus_per_worker},
        ),
        run_config=RunConfig(storage_path=scratch, name="sft"),
    )
    outcome: dict = {}

    def fit() -> None:
        try:
            outcome["result"] = trainer.fit()
        except BaseException as exc:  # re-raised below, in the calling thread
            outcome["error"] = exc

    runner = threading.Thread(target=fit, daemon=True)
    runner.start()
    try:
        while runner.is_alive():
            runner.join(timeout=0.5)
            while queue is not None and not queue.empty():
                on_progress(*queue.get_nowait())
        if "error" in outcome:
            raise outcome["error"]
        result = outcome["result"]
        if result.error:
            raise result.error
        result.checkpoint.to_directory(str(out_dir))
        return dict(result.metrics or {})
    finally:
        if queue is not None:
            queue.shutdown()
        shutil.rmtree(scratch, ignore_errors=True)  # Ray Train's run folder: the checkpoint is copied out
