"""A pool of generation engines; shards go to whichever engine is free (a slow engine never holds the rest).

The pool computes and returns records shard by shard through a callback; the stage that owns the pool
persists each shard as it arrives, so finished work survives a crash of the driver.

Engines that may stay open in a process (the transformers backend, on CPU) run each shard as a Ray task; the
worker process keeps the engine it opened, so the next shard or stage on the same model starts generating at
once, and a stage on another model finds torch and transformers imported (issue 16, item 7: each stage paid a
new engine process). vLLM engines on CPU are actors kept warm between stages (ray_cluster/warm_engines.py): the
next stage's model is swapped in place when its architecture and tokenizer are the same. GPU engines are actors
opened for the stage and closed at its end.
"""
from __future__ import annotations

import time
from typing import Callable

from pydantic import BaseModel, ConfigDict, Field

from ray_cluster.folders import RemoteFolder
from ray_cluster.generation import CompletionRecord, EngineSpec, PromptRecord, SamplingSpec
from ray_cluster.generation_engine import GenerationEngine


class PoolResources(BaseModel):
    model_config = ConfigDict(extra="forbid")
    num_engines: int = Field(default=1, ge=1)
    gpus_per_engine: float = Field(default=0, ge=0, description="GPUs per engine actor (0 on CPU machines)")
    cpus_per_engine: int = Field(default=2, ge=1, description="CPU threads per engine")
    keep_warm: bool = Field(default=True, description="CPU actor engines (vLLM) stay open after the stage and take "
                            "the next stage's model in place; while kept they reserve no CPUs, as a flow's stages "
                            "run one at a time (false: engines reserve their CPUs and close with the stage)")
    max_shard_retries: int = Field(default=2, ge=0, description="re-runs of a shard whose engine died")
    restart_timeout_s: float = Field(default=600, gt=0, description="how long to wait for a dead engine to restart")


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
) -> dict[str, float]:
    """Generate every shard, calling `on_shard_done(shard_id, records)` as each one finishes.

    Returns timings: `engine_start_s` (until the first engine was ready) and `generate_wall_s` (from then
    until the last shard was handed over), so throughput can be stated with and without start-up."""
    import ray

    if not shards:
        return {"engine_start_s": 0.0, "generate_wall_s": 0.0}
    from ray_cluster.backends import backend_class

    if resources.gpus_per_engine == 0 and backend_class(spec).reusable_in_process:
        return _run_as_tasks(model, model_id, spec, resources, shards, sampling, on_shard_done)
    from ray_cluster import warm_engines

    started = time.time()
    n_engines = min(resources.num_engines, len(shards))
    warm = resources.keep_warm and resources.gpus_per_engine == 0
    if warm:
        engines = warm_engines.take(model, model_id, spec, resources.cpus_per_engine, resources.max_shard_retries,
                                    n_engines)
    else:
        actor_cls = ray.remote(GenerationEngine).options(
            num_cpus=resources.cpus_per_engine, num_gpus=resources.gpus_per_engine,
            max_restarts=resources.max_shard_retries,  # a dead engine comes back (new process) for the retry
        )
        engines = [actor_cls.remote(model, model_id, spec, resources.cpus_per_engine) for _ in range(n_engines)]
    dispatch = _Dispatch(engines, model, model_id, shards, sampling, resources, on_shard_done)
    finished = False
    try:
        dispatch.run()
        finished = True
        first_ready = min(dispatch.ready_at.values())
        return {"engine_start_s": round(first_ready - started, 3),
                "generate_wall_s": round(time.time() - first_ready, 3)}
    finally:
        if warm and finished:
            warm_engines.keep(dispatch.engines, spec, resources.cpus_per_engine)
        else:
            warm_engines.close(engines)


_HELD: dict = {}  # in a Ray worker process: the engine the last shard opened, kept for the next shard or stage


def generate_shard(model: RemoteFolder, model_id: str, spec: EngineSpec, threads: int, prompts: list[PromptRecord],
                   sampling: SamplingSpec) -> tuple[list[CompletionRecord], float]:
    """One shard as a Ray task: (records, seconds spent opening the engine — 0 when this process had it open)."""
    from ray_cluster.backends import open_backend
    from ray_cluster.calculator import generate_records
    from ray_cluster.folders import materialize

    started, key = time.time(), (model.uri, model.content_hash, spec.model_dump_json(), threads)
    held = _HELD.get("engine")
    if held is None or held[0] != key:
        if held is not None:
            held[1].close()
            _HELD.clear()
        _HELD["engine"] = (key, open_backend(materialize(model), model_id, spec, threads))
    backend = _HELD["engine"][1]
    backend.model_id = model_id  # the records carry the stage's name for the model
    opened = time.time() - started
    return generate_records(backend, prompts, sampling), opened


def _run_as_tasks(model: RemoteFolder, model_id: str, spec: EngineSpec, resources: PoolResources,
                  shards: dict[int, list[PromptRecord]], sampling: SamplingSpec,
                  on_shard_done: Callable[[int, list[CompletionRecord]], None]) -> dict[str, float]:
    """Up to `num_engines` shards at a time; a task whose worker dies is rerun by Ray (`max_shard_retries`)."""
    import ray

    started, pending, running, opened = time.time(), sorted(shards), {}, []
    task = ray.remote(generate_shard).options(num_cpus=resources.cpus_per_engine, name="generate_shard",
                                              max_retries=resources.max_shard_retries)
    try:
        while pending or running:
            while pending and len(running) < resources.num_engines:
                shard_id = pending.pop(0)
                running[task.remote(model, model_id, spec, resources.cpus_per_engine, shards[shard_id],
                                    sampling)] = shard_id
            done, _ = ray.wait(list(running), num_returns=1)
            shard_id = running.pop(done[0])
            try:
                records, open_s = ray.get(done[0])
            except (ray.exceptions.WorkerCrashedError, ray.exceptions.RayTaskError) as exc:
                raise ShardFailed(f"shard {shard_id} failed after {resources.max_shard_retries} retries "
                                  f"(prompts {shards[shard_id][0].prompt_id}...): {exc}") from exc
            opened.append(open_s)
            on_shard_done(shard_id, records)
    finally:
        for ref in running:  # the stage failed: stop what is still generating
            ray.cancel(ref, force=True)
    start_s = max(opened, default=0.0)
    return {"engine_start_s": round(start_s, 3), "generate_wall_s": round(time.time() - started - start_s, 3)}


class _Dispatch:
    """Free-engine dispatch: each engine takes the next pending shard as soon as it is idle. An engine that
    dies is restarted by Ray; its shard goes back to the front of the queue, and the engine gets work again
    once it has loaded the model again (a restarting actor rejects calls, and that must not count as a shard
    failure)."""

    def __init__(self, engines: list, model: RemoteFolder, model_id: str, shards: dict[int, list[PromptRecord]],
                 sampling: SamplingSpec, resources: PoolResources,
                 on_shard_done: Callable[[int, list[CompletionRecord]], None]):
        self.engines, self.shards, self.sampling = list(engines), shards, sampling
        self.model, self.model_id = model, model_id
        self.resources, self.on_shard_done = resources, on_shard_done
        self.pending = sorted(shards)
        self.attempts = {shard_id: 0 for shard_id in shards}
        self.running: dict = {}  # object ref -> (engine, shard id, or None for a model load)
        self.restart_deadline: dict[int, float] = {}  # id(engine) -> give up waiting for its restart
        self.ready_at: dict[int, float] = {}  # id(engine) -> when it first had the model loaded
        self.last_error: Exception | None = None
        for engine in self.engines:  # an engine gets work once it has loaded the model (a kept one swaps it in)
            self.running[engine.load.remote(model, model_id)] = (engine, None)

    def run(self) -> None:
        import ray

        while self.pending or any(shard is not None for _, shard in self.running.values()):
            if not self.engines:
                raise ShardFailed(f"every engine died; shards {self.pending} not generated; "
                                  f"last error: {self.last_error}")
            self._dispatch()
            done, _ = ray.wait(list(self.running), num_returns=1)
            engine, shard_id = self.running.pop(done[0])
            try:
                result = ray.get(done[0])
            except (ray.exceptions.RayActorError, ray.exceptions.ActorUnavailableError) as exc:
                self._engine_failed(engine, shard_id, exc)
                continue
            if shard_id is not None:
                self.on_shard_done(shard_id, result)
            self.ready_at.setdefault(id(engine), time.time())
            self.restart_deadline.pop(id(engine), None)

    def _dispatch(self) -> None:
        busy = {id(engine) for engine, _ in self.running.values()}
        for engine in self.engines:
            if self.pending and id(engine) not in busy:
                shard_id = self.pending.pop(0)
                call = engine.generate.remote(self.shards[shard_id], self.sampling, self.model, self.model_id)
                self.running[call] = (engine, shard_id)

    def _engine_failed(self, engine, shard_id: int | None, exc: Exception) -> None:
        import ray

        self.last_error = exc
        if shard_id is not None:
            self.attempts[shard_id] += 1
            if self.attempts[shard_id] > self.resources.max_shard_retries:
                raise ShardFailed(f"shard {shard_id} failed {self.attempts[shard_id]} times "
                                  f"(prompts {self.shards[shard_id][0].prompt_id}...); last error: {exc}") from exc
            self.pending.insert(0, shard_id)  # retried first, on whichever engine is free next
        deadline = self.restart_deadline.setdefault(id(engine), time.time() + self.resources.restart_timeout_s)
        restarting = isinstance(exc, ray.exceptions.ActorUnavailableError) or shard_id is not None
        if restarting and time.time() < deadline:
            time.sleep(0.25)
            self.running[engine.load.remote(self.model, self.model_id)] = (engine, None)
        else:  # out of restarts, or it never came back: go on with the other engines
            self.engines.remove(engine)
