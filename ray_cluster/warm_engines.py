"""vLLM engine actors kept open between the stages of a driver (issue 16, item 7).

The quickstart started 9 vLLM engines of ~11.7 s each, 13% of its flow, though every model it samples from has the
same architecture and tokenizer. Here the engines outlive the stage: the next stage takes them and each one
swaps in its model's weights in place (`GenerationEngine.load`; 4–37 ms for the quickstart's model), or reopens the
backend in the same process when the model is of another shape. One set of engines is kept, for one engine spec
and pool shape; asking for another closes it. A failed stage closes its engines (their state is unknown).

Kept engines reserve no CPUs: a flow's stages run one after another, so an idle engine never competes with the
stage that runs (training takes the same cores); `PoolResources.keep_warm: false` gives engines that reserve
their CPUs and close with their stage, for clusters where flows run side by side. vLLM leaves /dev/shm segments
behind unless shut down explicitly, so the engines are closed at `ray_cluster.connect.shutdown_ray` and at the
driver's exit.
"""
from __future__ import annotations

import atexit
import threading

from ray_cluster.folders import RemoteFolder
from ray_cluster.generation import EngineSpec

_KEPT: dict = {}  # "key": (spec, threads), "job": the Ray job that created them, "engines": idle actor handles
_LOCK = threading.Lock()  # flows served side by side in one process share the kept set


def _job_id() -> str:
    import ray

    return ray.get_runtime_context().get_job_id()


def take(model: RemoteFolder, model_id: str, spec: EngineSpec, threads: int, max_restarts: int, n: int) -> list:
    """`n` engine actors for `spec`: kept ones first (they load `model` when first called), new ones for the rest.
    Kept engines of another spec or an earlier Ray session, and any that no longer answer, are closed first."""
    import ray

    from ray_cluster.generation_engine import GenerationEngine

    key = _key(spec, threads)
    with _LOCK:
        stale = bool(_KEPT) and (_KEPT["key"] != key or _KEPT["job"] != _job_id())
    if stale:
        close_all()
    with _LOCK:
        idle = _KEPT.pop("engines", [])
        _KEPT.update(key=key, job=_job_id())
    answering = [_alive(engine) for engine in idle]
    kept = [engine for engine, ok in zip(idle, answering) if ok]
    close([engine for engine, ok in zip(idle, answering) if not ok])  # e.g. out of restarts, or still restarting
    close(kept[n:])  # more than this stage wants: one set is kept, sized by the last stage
    actor_cls = ray.remote(GenerationEngine).options(num_cpus=0, scheduling_strategy="SPREAD",
                                                     max_restarts=max_restarts)
    fresh = [actor_cls.remote(model, model_id, spec, threads) for _ in range(n - len(kept[:n]))]
    if not getattr(take, "_exit_hook", False):  # registered after ray.init: runs before Ray's own shutdown hook
        atexit.register(close_all)
        take._exit_hook = True
    return kept[:n] + fresh


def _alive(engine) -> bool:
    """A kept engine answers a ping (one that died while idle, or is restarting, does not)."""
    import ray

    try:
        return ray.get(engine.ping.remote(), timeout=30)
    except Exception:
        return False


def keep(engines: list, spec: EngineSpec, threads: int) -> None:
    """The stage finished: its engines stay open for the next stage; if another stage kept a set meanwhile
    (flows side by side in one process), these are closed instead: one set is kept."""
    with _LOCK:
        mine = _KEPT.get("key") == _key(spec, threads) and not _KEPT.get("engines")
        if mine:
            _KEPT["engines"] = list(engines)
    if not mine:
        close(engines)


def _key(spec: EngineSpec, threads: int) -> tuple:
    return spec.model_dump_json(), threads


def close(engines: list) -> None:
    import ray

    for engine in engines:
        try:
            ray.get(engine.close.remote(), timeout=60)
        except Exception:  # a dead engine has nothing left to close
            pass
        ray.kill(engine, no_restart=True)


def close_all() -> None:
    """Shut every kept engine down (vLLM's explicit shutdown: no /dev/shm segments left) and forget them."""
    import ray

    with _LOCK:
        engines = _KEPT.pop("engines", [])
        same_session = ray.is_initialized() and _KEPT.get("job") == _job_id()
        _KEPT.clear()
    if same_session:
        close(engines)


def kept_engines() -> list:
    """The engine actors open now (for tests and `winnow` diagnostics)."""
    return list(_KEPT.get("engines", []))
