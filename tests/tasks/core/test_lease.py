"""One run at a time per stage key: a second run of the same stage waits for the first and reuses its artifact
(instead of sharing its parts); with a wait limit it refuses, naming the holder; a killed holder's lease expires
and is taken over."""
from __future__ import annotations

import json
import threading
import time

import pytest

from tasks.core.lease import StageBusy, StageLease
from tasks.core.stage_cache import StageContext, run_stage
from tasks.core.store import ArtifactStore


def test_a_second_run_of_the_same_stage_waits_and_reuses_the_first_ones_artifact(store_spec):
    calls, started = [], threading.Event()

    def compute(out, parts):
        calls.append(threading.current_thread().name)
        started.set()
        time.sleep(3)  # the second run arrives while this one holds the lease
        parts.put("piece", _file(out, "piece.txt", b"mine"))
        (out / "result.txt").write_text(threading.current_thread().name)
        return {}

    results = {}

    def run(name):
        ctx = StageContext(store=store_spec, show_progress=False, run_id=name)
        results[name] = run_stage(ctx, "leased", {"x": 1}, {}, compute, resumable=True)

    first = threading.Thread(target=run, args=("first",), name="first")
    first.start()
    started.wait(30)
    second = threading.Thread(target=run, args=("second",), name="second")
    second.start()
    first.join(60)
    second.join(60)
    assert calls == ["first"]  # computed once; the second waited, then found it committed
    assert results["first"] == results["second"]
    assert ArtifactStore(store_spec).list_parts("leased", results["first"].key) == {}


def test_a_held_lease_refuses_after_the_wait_naming_the_holder(tmp_path):
    from tasks.core.store import StoreSpec

    store = ArtifactStore(StoreSpec(url=str(tmp_path / "store")))
    with StageLease(store, "s", "k" * 32, "holder-run"):
        with pytest.raises(StageBusy, match=r"s/kkkkkkkkkkkk is being computed by run holder-run@"):
            with StageLease(store, "s", "k" * 32, "other-run", wait_s=0.5, poll_s=0.1):
                pass
    with StageLease(store, "s", "k" * 32, "other-run", wait_s=0.5, poll_s=0.1) as lease:  # released: free
        assert lease.read()["owner"].startswith("other-run@")
    assert lease.read() is None  # and released again on exit


def test_a_dead_holders_lease_expires_and_is_taken_over(tmp_path):
    from tasks.core.store import StoreSpec

    store = ArtifactStore(StoreSpec(url=str(tmp_path / "store")))
    stale = StageLease(store, "s", "k" * 32, "killed-run")
    store.fs.makedirs(stale.path.rsplit("/", 1)[0], exist_ok=True)
    # what a run killed with SIGKILL leaves: a lease nobody renews any more
    store.fs.pipe(stale.path, json.dumps({"owner": stale.owner, "renewed_at": time.time() - 200,
                                          "expires_at": time.time() - 10}).encode())
    with StageLease(store, "s", "k" * 32, "rerun", wait_s=5, poll_s=0.1) as lease:
        assert lease.read()["owner"].startswith("rerun@") and lease.waited_s < 5


def _file(folder, name, data):
    path = folder.parent / f"{folder.name}-{name}"
    path.write_bytes(data)
    return path


def test_a_killed_holder_on_this_host_is_taken_over_at_once(tmp_path):
    """A driver killed with SIGKILL leaves a lease that would stand until it expires: its pid is gone, so not."""
    import subprocess
    import sys

    from tasks.core.store import StoreSpec

    store = ArtifactStore(StoreSpec(url=str(tmp_path / "store")))
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    stale = StageLease(store, "s", "k" * 32, "killed-run")
    store.fs.makedirs(stale.path.rsplit("/", 1)[0], exist_ok=True)
    host = stale.owner.split("@", 1)[1].split(":")[0]
    store.fs.pipe(stale.path, json.dumps({"owner": f"killed-run@{host}:{gone.pid}:x", "renewed_at": time.time(),
                                          "expires_at": time.time() + 600}).encode())
    with StageLease(store, "s", "k" * 32, "rerun", wait_s=2, poll_s=0.1) as lease:
        assert lease.waited_s < 2
    with StageLease(store, "s", "k" * 32, "holder"):  # a live holder is still waited for
        with pytest.raises(StageBusy):
            with StageLease(store, "s", "k" * 32, "other", wait_s=0.3, poll_s=0.1):
                pass
