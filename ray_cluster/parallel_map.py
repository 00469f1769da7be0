"""Mapping a function over chunks of work as Ray tasks, one CPU each, across every node of the cluster.

A chunk whose task fails (an exception, or its worker process dying) comes back as a `ChunkFailed` with the
reason, after `max_retries` re-runs; the other chunks are unaffected, so one bad chunk never fails the stage.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable


@dataclass(frozen=True)
class ChunkFailed:
    index: int
    reason: str


def map_chunks(fn: Callable[..., list], chunks: list[Any], *args: Any, num_cpus: float = 1.0, max_retries: int = 1,
               timeout_s: float | None = None, max_in_flight: int | None = None,
               on_done: Callable[[int, list | ChunkFailed], None] | None = None) -> list[list | ChunkFailed]:
    """[fn(chunk, *args) for chunk in chunks] as Ray tasks; results in chunk order.

    `fn` must be importable by name on the workers (a module-level function). A chunk running longer than
    `timeout_s` is cancelled (its worker killed) and failed. `on_done(index, result)` is called in the driver
    as each chunk finishes (progress, or persisting finished work).
    """
    import ray

    remote = ray.remote(fn).options(num_cpus=num_cpus, max_retries=max_retries, retry_exceptions=False)
    shared = [ray.put(a) for a in args]
    # no more in flight than fit at once, so a chunk's clock starts when it can run
    limit = max_in_flight or max(1, int(ray.cluster_resources().get("CPU", 1) // num_cpus))
    results: list[list | ChunkFailed | None] = [None] * len(chunks)
    pending: dict[Any, tuple[int, float]] = {}
    next_index = 0
    while next_index < len(chunks) or pending:
        while next_index < len(chunks) and len(pending) < limit:
            pending[remote.remote(chunks[next_index], *shared)] = (next_index, time.monotonic())
            next_index += 1
        done, _ = ray.wait(list(pending), num_returns=1, timeout=1.0)
        finished = [(ref, _result(ref, pending[ref][0])) for ref in done]
        if timeout_s is not None:
            for ref, (index, started) in pending.items():
                if ref not in done and time.monotonic() - started > timeout_s:
                    ray.cancel(ref, force=True)
                    finished.append((ref, ChunkFailed(index, f"still running after {timeout_s:g} s; cancelled")))
        for ref, result in finished:
            index, _ = pending.pop(ref)
            results[index] = result
            if on_done is not None:
                on_done(index, result)
    return results  # type: ignore[return-value]


def _result(ref: Any, index: int) -> list | ChunkFailed:
    import ray

    try:
        return ray.get(ref)
    except Exception as exc:  # the task raised, or its worker died after its retries
        return ChunkFailed(index, f"{type(exc).__name__}: {str(exc).strip().splitlines()[-1][:500]}")
