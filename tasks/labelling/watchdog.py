"""A hard time bound per sample (issue 14, item 5). Labellers run model output through parsers that can take
unbounded time on hostile input (math-verify on `#### 9^{9^{9}}` computes a 370-million-digit integer in C, which
no signal interrupts), so one sample could stall a whole chunk and turn all its rows into failures. Here the
samples of a chunk are labelled in a forked child, one at a time; a sample that exceeds its bound gets a
`timeout` result, the child is killed, and a fresh child goes on with the next sample."""
from __future__ import annotations

import multiprocessing as mp
import os
import signal
from dataclasses import dataclass
from typing import Callable, Sequence, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Timeout:
    seconds: float


@dataclass(frozen=True)
class Crashed:
    reason: str


def _serve(fn: Callable, items: Sequence, conn) -> None:
    # the child: results in order, one message per item; an exception is the item's result, not the child's end
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    for item in items:
        try:
            conn.send(("ok", fn(item)))
        except Exception as exc:  # pragma: no cover - fn is expected to catch its own errors
            conn.send(("error", f"{type(exc).__name__}: {exc}"))
    conn.close()


def map_bounded(fn: Callable[[T], object], items: Sequence[T], timeout_s: float) -> list:
    """[fn(item) for item in items], each call bounded by `timeout_s` seconds of wall time; an item over it is
    `Timeout`, one whose child died is `Crashed` (e.g. killed for memory). `fn` must be picklable-free: the
    child is forked, so closures work; results are sent back pickled."""
    if not items:
        return []
    results: list = []
    context = mp.get_context("fork")
    while len(results) < len(items):
        receive, send = context.Pipe(duplex=False)
        child = context.Process(target=_serve, args=(fn, items[len(results):], send), daemon=True)
        child.start()
        send.close()
        try:
            while len(results) < len(items):
                if not receive.poll(timeout_s):
                    results.append(Timeout(timeout_s))
                    break
                try:
                    kind, value = receive.recv()
                except (EOFError, OSError):
                    child.join(timeout=5)
                    results.append(Crashed(f"labelling process exited with {child.exitcode}"))
                    break
                results.append(value if kind == "ok" else Crashed(value))
        finally:
            _stop(child)
            receive.close()
    return results


def _stop(child) -> None:
    if child.is_alive():
        os.kill(child.pid, signal.SIGKILL)
    child.join(timeout=5)
