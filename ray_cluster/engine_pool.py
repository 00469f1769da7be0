"""A pool of generation engine actors; shards go to whichever engine is free (a slow engine never holds the rest).

The pool computes and returns records shard by shard through a callback; the stage that owns the pool
persists each shard as it arrives, so finished work survives a crash of the driver.
"""
from __future__ import annotations

from typing import Callable

from pydantic import BaseModel, ConfigDict, Field

from ray_cluster.folders import RemoteFolder
from ray_cluster.generation import CompletionRecord, EngineSpec, PromptRecord, SamplingSpec


class PoolResources(BaseModel):
    model_config = ConfigDict(extra="forbid")
    num_engines: int = Field(default=1, ge=1)
    gpus_per_engine: float = Field(default=0, ge=0, description="GPUs per engine actor (0 on CPU machines)")
    cpus_per_engine: int = Field(default=2, ge=1, description="CPU threads per engine")
    max_shard_retries: int = Field(default=2, ge=0, description="re-runs of a shard whose engine died")


class GenerationEngine:
    """Ray actor body: holds one model in one backend, generates shard after shard."""

    def __init__(self, model: RemoteFolder, model_id: str, spec: EngineSpec, threads: int):
        from ray_cluster.folders import materialize
        from ray_cluster.generation import open_backend

        self.backend = open_backend(materialize(model), model_id, spec, threads)

    def generate(self, prompts: list[PromptRecord], sampling: SamplingSpec) -> list[CompletionRecord]:
        return self.backend.generate(prompts, sampling)

    def close(self) -> None:
        self.backend.close()


class ShardFailed(RuntimeError):
    pass


def run_shards(
    model: RemoteFolder,
    model_id: str,
    spec: EngineSpec,
    resources: PoolResources,
    shards: dict[int, list[PromptRecord]],
    sampling: SamplingSpec,
    on_shard_done: Callable[[int, list[CompletionRecord]], None],
) -> None:
    """Generate every shard, calling `on_shard_done(shard_id, records)` as each one finishes."""
    import ray

    if not shards:
        return
    actor_cls = ray.remote(GenerationEngine).options(
        num_cpus=resources.cpus_per_engine, num_gpus=resources.gpus_per_engine, max_restarts=1,
    )
    n_engines = min(resources.num_engines, len(shards))
    engines = [actor_cls.remote(model, model_id, spec, resources.cpus_per_engine) for _ in range(n_engines)]
    pending = sorted(shards)
    attempts = {shard_id: 0 for shard_id in shards}
    running: dict = {}  # object ref -> (engine, shard id)
    try:
        while pending or running:
            busy = {id(engine) for engine, _ in running.values()}
            for engine in engines:
                if pending and id(engine) not in busy:
                    shard_id = pending.pop(0)
                    running[engine.generate.remote(shards[shard_id], sampling)] = (engine, shard_id)
            done, _ = ray.wait(list(running), num_returns=1)
            engine, shard_id = running.pop(done[0])
            try:
                records = ray.get(done[0])
            except (ray.exceptions.RayActorError, ray.exceptions.ActorUnavailableError) as exc:
                attempts[shard_id] += 1
                if attempts[shard_id] > resources.max_shard_retries:
                    raise ShardFailed(f"shard {shard_id} failed {attempts[shard_id]} times; last: {exc}") from exc
                pending.insert(0, shard_id)  # the actor restarts (max_restarts); retry the shard first
                continue
            on_shard_done(shard_id, records)
    finally:
        for engine in engines:
            try:
                ray.get(engine.close.remote(), timeout=60)
            except Exception:  # a dead engine has nothing left to close
                pass
            ray.kill(engine)
