"""One run at a time per stage key (issue 14, item 7). Two runs computing the same (stage, key) would share its
`parts/` and checkpoints — each resuming from the other's pieces, one's clean-up deleting what the other is about
to read. A lease file next to the artifact (`artifacts/<stage>/<key>/lease.json`) names the run computing it and
is renewed by a heartbeat while it does; a second run waits while the holder is alive (then usually finds the
artifact committed and reuses it), takes over a lease whose holder stopped renewing it, or on this host no longer
exists (a killed run), and with
`wait_s` refuses after that long, naming the holder."""
from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid

from tasks.core.store import ArtifactStore

LEASE = "lease.json"


class StageBusy(RuntimeError):
    """Another live run holds the lease of this stage key."""


def _dead_here(owner: str) -> bool:
    """Whether the lease's holder was a process on this host that no longer exists (a killed driver): then its
    lease is stale at once, not only when it expires."""
    try:
        host, pid = owner.split("@", 1)[1].split(":")[:2]
        if host != socket.gethostname():
            return False
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except (ValueError, IndexError, PermissionError):
        return False
    return False


class StageLease:
    """`with StageLease(store, stage, key, run_id):` — held for the body, renewed every `ttl_s / 3` seconds."""

    def __init__(self, store: ArtifactStore, stage: str, key: str, run_id: str, ttl_s: float = 90.0,
                 wait_s: float | None = None, poll_s: float = 2.0, path: str | None = None):
        self.store, self.stage, self.key = store, stage, key
        # `path`: a lease outside the artifact tree (the model registry's per-name lock)
        self.path = path or f"{store._artifact_dir(stage, key)}/{LEASE}"
        self.owner = f"{run_id}@{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.ttl_s, self.wait_s, self.poll_s = ttl_s, wait_s, poll_s
        self._stop = threading.Event()
        self._beat: threading.Thread | None = None
        self.waited_s = 0.0

    def __enter__(self) -> "StageLease":
        started = time.time()
        while not self._try_acquire():
            holder = self.read() or {}
            self.waited_s = time.time() - started
            if self.wait_s is not None and self.waited_s >= self.wait_s:
                raise StageBusy(f"{self.stage}/{self.key[:12]} is being computed by run {holder.get('owner')} "
                                f"(lease renewed {time.time() - holder.get('renewed_at', 0):.0f} s ago); waited "
                                f"{self.waited_s:.0f} s")
            time.sleep(self.poll_s)
        self.waited_s = time.time() - started
        self._beat = threading.Thread(target=self._heartbeat, name=f"lease-{self.stage}", daemon=True)
        self._beat.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._beat is not None:
            self._beat.join(timeout=5)
        holder = self.read()
        if holder is not None and holder.get("owner") == self.owner:
            try:
                self.store.fs.rm(self.path)
            except FileNotFoundError:
                pass

    def read(self) -> dict | None:
        from tasks.core.store import KeptChanging

        self.store.fs.invalidate_cache(self.path.rsplit("/", 1)[0])
        try:
            return self.store.read_json(self.path)
        except (FileNotFoundError, json.JSONDecodeError, KeptChanging):
            return None

    def _record(self) -> dict:
        now = time.time()
        return {"owner": self.owner, "renewed_at": now, "expires_at": now + self.ttl_s}

    def _try_acquire(self) -> bool:
        holder = self.read()
        if holder is not None and holder.get("owner") != self.owner and holder.get("expires_at", 0) > time.time() \
                and not _dead_here(holder.get("owner", "")):
            return False
        if holder is not None and self.store.is_local:  # stale: removed, then the atomic create decides
            self._clear_stale(holder)
            holder = None
        if self.store.is_local and holder is None:
            # create-if-absent is atomic on a local filesystem: of two runs, one gets the file
            os.makedirs(os.path.dirname(self.path), exist_ok=True)
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                return False
            with os.fdopen(fd, "w") as fh:
                fh.write(json.dumps(self._record()))
            return True
        self.store._write_json_atomic(self.path, self._record())
        # an object store has no create-if-absent here: write, let a concurrent writer land, read back
        time.sleep(min(1.0, self.poll_s))
        return (self.read() or {}).get("owner") == self.owner

    def _clear_stale(self, holder: dict) -> None:
        if (self.read() or {}).get("owner") != holder.get("owner"):
            return  # someone took it over meanwhile: their fresh lease stays (the create below then fails)
        try:
            os.remove(self.path)
        except FileNotFoundError:
            pass

    def _heartbeat(self) -> None:
        while not self._stop.wait(self.ttl_s / 3):
            holder = self.read()
            if holder is None or holder.get("owner") == self.owner:
                self.store._write_json_atomic(self.path, self._record())
