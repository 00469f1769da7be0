"""Training on Ray: every method; one worker as a Ray task in a warm worker process, N workers on Ray Train's
TorchTrainer with DDP (or FSDP) on CPU (gloo) or GPU (nccl).

Workers build the model (fresh tiny model, or from an HF folder; LoRA adapters by config), continue from the
newest complete checkpoint in the store when there is one, run models/train_loop.py, and write checkpoints to
the store: an HF folder (safetensors + config + tokenizer, loadable by transformers and vLLM as is) plus the
optimizer / scheduler / RNG / data-position state. The calling stage turns the final checkpoint into its artifact.
"""
from __future__ import annotations

import shutil
import tempfile
import threading
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
    """One Ray Train worker of a multi-worker job: rank, world, device and the DDP/FSDP wrapper from Ray Train."""
    import ray.train
    import ray.train.torch

    ctx = ray.train.get_context()
    final = _run_job(config["job"], config["threads"], config["progress"], ctx.get_world_rank(),
                     ctx.get_world_size(), ray.train.torch.get_device(),
                     lambda m: ray.train.torch.prepare_model(m, parallel_strategy=config["strategy"]))
    ray.train.report({"steps": final.step, "final_loss": final.history[-1]["loss"]})


def _one_worker(job: "TrainJob", threads: int, queue) -> dict:
    """A single-worker job as a Ray task: no process group to form, so no worker group either. Ray keeps idle
    task workers, so the next stage's job lands in a process that has torch and transformers imported already
    (issue 16, item 7: a new Ray Train worker group per stage cost 1.5x a plain torch loop)."""
    import torch

    device = torch.device("cuda" if job.config.resources.use_gpu and torch.cuda.is_available() else "cpu")
    final = _run_job(job, threads, queue, 0, 1, device, lambda m: m.to(device))
    return {"steps": final.step, "final_loss": final.history[-1]["loss"]}


def _run_job(job: "TrainJob", threads: int, queue, rank: int, world: int, device, wrap):
    import os

    import torch

    from models.train_loop import run_training
    from ray_cluster.checkpoints import load_latest, save_checkpoint
    from ray_cluster.model_builder import build_for_job, trainable_model

    torch.set_num_threads(threads)
    tokenizer, model, method = build_for_job(job)
    lora = job.config.lora is not None
    state = load_latest(job.checkpoints, model, lora)
    wrapped = wrap(trainable_model(job, model))

    def on_step(info) -> None:
        if rank == 0 and queue is not None:
            queue.put_nowait(info.metrics)
        if job.fault_at_step is not None and info.step == job.fault_at_step:
            os._exit(1)  # a crash, not an exception: nothing after this runs

    def on_checkpoint(st) -> None:
        save_checkpoint(job.checkpoints, model, tokenizer, st, rank, lora)

    return run_training(wrapped, method, job.config.optim, device, rank, world, state, on_step, on_checkpoint)


def fit(job: TrainJob, on_progress: Callable[[dict], None] | None = None) -> None:
    """Run the job with its config's `resources` until its last checkpoint is written (`job.checkpoints`): one
    worker as a Ray task (warm process, no group to form), several as a Ray Train worker group (DDP / FSDP)."""
    resources = job.config.resources
    queue = _take_queue() if on_progress else None
    finished = False
    try:
        if resources.num_workers == 1:
            _fit_one(job, queue, on_progress)
        else:
            _fit_group(job, queue, on_progress)
        finished = True
    finally:
        if queue is not None:
            _give_back(queue, finished)


# Progress queues kept for the driver's next training stage: each new one is an actor, so a worker process to
# start (about a second of CPU on a 2-core machine; 26 of them in one test session). One per fit at a time.
_IDLE_QUEUES: dict = {"job": None, "queues": []}
_QUEUE_LOCK = threading.Lock()


def _take_queue():
    """An idle progress queue of this Ray job, emptied, or a new one."""
    import ray
    from ray.util.queue import Queue

    job_id = ray.get_runtime_context().get_job_id()
    with _QUEUE_LOCK:
        if _IDLE_QUEUES["job"] != job_id:  # another Ray session: the old actors are gone with it
            _IDLE_QUEUES.update(job=job_id, queues=[])
        queue = _IDLE_QUEUES["queues"].pop() if _IDLE_QUEUES["queues"] else None
    if queue is not None:
        try:
            while not queue.empty():
                queue.get_nowait()
            return queue
        except Exception:  # its actor died: a new one
            pass
    return Queue(actor_options={"num_cpus": 0})


def _give_back(queue, finished: bool) -> None:
    """Keep the queue for the next stage only when its workers are done with it: after a failure one may still be
    writing, and the next stage would show its steps."""
    import ray

    with _QUEUE_LOCK:
        if finished and _IDLE_QUEUES["job"] == ray.get_runtime_context().get_job_id():
            _IDLE_QUEUES["queues"].append(queue)
            return
    queue.shutdown()


def _fit_one(job: TrainJob, queue, on_progress) -> None:
    import ray

    resources = job.config.resources
    task = ray.remote(_one_worker).options(num_cpus=resources.cpus_per_worker, num_gpus=int(resources.use_gpu),
                                           max_retries=0)  # a crash fails the stage; the rerun resumes
    done = task.remote(job, resources.cpus_per_worker, queue)
    while not ray.wait([done], timeout=0.5)[0]:
        _drain(queue, on_progress)
    _drain(queue, on_progress)
    try:
        ray.get(done)
    except ray.exceptions.WorkerCrashedError as exc:
        raise RuntimeError(f"the training worker died (resume from the last checkpoint by rerunning): {exc}") from exc


def _fit_group(job: TrainJob, queue, on_progress) -> None:
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    resources = job.config.resources
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
            _drain(queue, on_progress)
        if "error" in outcome:
            raise outcome["error"]
        if outcome["result"].error:
            raise outcome["result"].error
    finally:
        shutil.rmtree(scratch, ignore_errors=True)  # Ray Train's own run folder; our checkpoints are in the store


def _drain(queue, on_progress) -> None:
    while queue is not None and not queue.empty():
        on_progress(queue.get_nowait())
