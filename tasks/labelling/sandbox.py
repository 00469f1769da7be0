"""Running untrusted programs (model output) in a sandbox: one process each, with time, memory, process, file,
output and network limits, a fresh working directory and a clean environment.

    result = run_sandboxed("print(6 * 7)", SandboxLimits(wall_seconds=5))
    result.status  # "ok" | "error" | "timeout" | "memory" | "output_limit" | "killed" | "exited" | "sandbox_error"

The confinement itself is applied by tasks/labelling/sandbox_launcher.py inside the child (namespaces, Landlock,
rlimits, a throw-away uid when root); this side enforces wall-clock time and output size, and classifies. It fails
closed (issue 14): a program runs only when every layer this machine needs is active (`required_layers`); a
machine that cannot have one must say so in the config (`sandbox.allow_weaker`), which is logged loudly and
recorded in the label stage's manifest.
Residual risk: the program runs in the launcher's interpreter, so code that walks the interpreter's frames
could forge the "finished" report; every OS-level limit still holds.
"""
from __future__ import annotations

import functools
import marshal
import os
import random
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
import logging
import sysconfig
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from tasks.labelling import sandbox_launcher

Status = Literal["ok", "error", "timeout", "memory", "output_limit", "killed", "exited", "sandbox_error"]
Layer = Literal["namespaces", "landlock", "drop_uid"]
DISABLE_ENV = "WINNOW_SANDBOX_DISABLE"  # layers to treat as missing (comma-separated): tests of the refusal path
FIXES = {
    "namespaces": "user and PID/network namespaces: run the workers as root, or allow unprivileged user namespaces "
                  "(sysctl kernel.unprivileged_userns_clone=1; kernel.apparmor_restrict_unprivileged_userns=0); in a "
                  "container, a seccomp profile that allows unshare (docs/deploy.md)",
    "landlock": "Landlock (Linux >= 5.13, in the kernel's lsm= list); in a container, a seccomp profile that allows "
                "the landlock_* syscalls (docs/deploy.md)",
    "drop_uid": "a throw-away uid per program: the labelling workers run as root (the project's images do)",
}
log = logging.getLogger(__name__)
STATUS_CAP = 4096  # bytes the status pipe may carry


class SandboxUnavailable(RuntimeError):
    """A confinement layer this machine needs is missing and the config does not allow running without it."""
_LAUNCHER = Path(sandbox_launcher.__file__)
_SANDBOX_UIDS = (2_000_000_000, 2_100_000_000)  # throw-away uids: one per run, so RLIMIT_NPROC is per run
_CLEAN_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "OMP_NUM_THREADS": "1",
              "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONDONTWRITEBYTECODE": "1"}


class SandboxLimits(BaseModel):
    model_config = ConfigDict(extra="forbid")
    wall_seconds: float = Field(default=10.0, gt=0, description="wall-clock limit, enforced by the parent")
    cpu_seconds: int = Field(default=10, ge=1, description="CPU-time limit (RLIMIT_CPU)")
    memory_mb: int = Field(default=1024, ge=64, description="address-space limit per process (RLIMIT_AS)")
    max_processes: int = Field(default=8, ge=1, description="processes and threads of the run (RLIMIT_NPROC)")
    max_file_mb: int = Field(default=16, ge=1, description="largest file it may write (RLIMIT_FSIZE)")
    max_dir_mb: int = Field(default=64, ge=1, description="everything it writes, together (a tmpfs quota)")
    max_open_files: int = Field(default=64, ge=16)
    max_output_kb: int = Field(default=1024, ge=1, description="stdout+stderr beyond this kills the run")
    keep_output_chars: int = Field(default=4000, ge=100, description="stdout/stderr kept in the result")
    allow_weaker: list[Layer] = Field(default_factory=list, description="confinement layers this machine cannot "
                                      "have that programs may run without (logged loudly, recorded in the "
                                      "manifest); empty: refuse to run untrusted code without every layer")


@dataclass(frozen=True)
class SandboxResult:
    status: Status
    returncode: int | None
    stdout: str
    stderr: str
    wall_s: float
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def sandbox_capabilities() -> dict:
    """Which confinement layers this machine supports (probed once per process; `WINNOW_SANDBOX_DISABLE` turns
    layers off, as a machine without them would be)."""
    caps = dict(_probe())
    disabled = {name.strip() for name in os.environ.get(DISABLE_ENV, "").split(",") if name.strip()}
    caps["namespaces"] = caps["namespaces"] and "namespaces" not in disabled
    caps["landlock_abi"] = 0 if "landlock" in disabled else caps["landlock_abi"]
    caps["drop_uid"] = caps["drop_uid"] and "drop_uid" not in disabled
    return caps


@functools.cache
def _probe() -> dict:
    probe = subprocess.run([sys.executable, "-I", "-c", _PROBE], capture_output=True, text=True, timeout=30)
    namespaces = probe.stdout.strip().endswith("ns-ok")
    return {"namespaces": namespaces, "landlock_abi": sandbox_launcher.landlock_abi(),
            "drop_uid": os.getuid() == 0, "probe_error": "" if namespaces else probe.stderr.strip()[-300:]}


def required_layers() -> list[str]:
    """What confines a program here: namespaces and Landlock always; as root also a throw-away uid (a program
    running as root would otherwise be root)."""
    return ["namespaces", "landlock"] + (["drop_uid"] if os.getuid() == 0 else [])


def confinement(limits: SandboxLimits) -> dict:
    """{"active": [...], "weakened": [...]} for this machine and config, or SandboxUnavailable naming each
    missing layer and its fix."""
    caps = sandbox_capabilities()
    have = {"namespaces": caps["namespaces"], "landlock": caps["landlock_abi"] >= 1, "drop_uid": caps["drop_uid"]}
    lacking = [layer for layer in required_layers() if not have[layer]]
    missing = [layer for layer in lacking if layer not in limits.allow_weaker]
    if missing:
        raise SandboxUnavailable(
            "the sandbox refuses to run model-written code: " + "; ".join(f"{layer} is not available (needs "
                                                                          f"{FIXES[layer]})" for layer in missing)
            + f". To run with less confinement on purpose, set sandbox.allow_weaker: {missing}")
    weakened = [layer for layer in lacking if layer in limits.allow_weaker]
    if weakened:
        log.warning("SANDBOX WEAKENED: running model-written code without %s (sandbox.allow_weaker)", weakened)
    kept = ["CAP_DAC_READ_SEARCH"] if have["drop_uid"] and _keep_read_search() else []
    return {"active": [layer for layer in required_layers() if have[layer]], "weakened": weakened,
            "kept_capabilities": kept}


_PROBE = f"""
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
flags = {sandbox_launcher.CLONE_NEWPID | sandbox_launcher.CLONE_NEWNET} | (0 if os.getuid() == 0 else {
    sandbox_launcher.CLONE_NEWUSER})
if libc.unshare(flags) != 0:
    raise SystemExit("unshare: " + os.strerror(ctypes.get_errno()))
print("ns-ok")
"""


@functools.cache
def _read_roots() -> list[str]:
    """What a sandboxed program may read: the interpreter and the libraries it may import (the standard library
    and site-packages, by sysconfig), system libraries. Never `sys.path` wholesale (under pytest and in Ray
    workers it holds the repository), never a folder that contains the repository, the store or a home."""
    paths = {sysconfig.get_path(name, vars=scheme_vars) for name in ("stdlib", "platstdlib", "purelib", "platlib")
             for scheme_vars in ({}, {"base": sys.base_prefix, "platbase": sys.base_exec_prefix})}
    roots = {p for p in paths if p and Path(p).is_dir()} | {str(Path(sys.executable).resolve().parent)}
    roots |= {"/usr", "/lib", "/lib64", "/bin", "/etc/ssl", "/etc/localtime", "/etc/ld.so.cache", "/dev/zero"}
    return sorted(root for root in roots if Path(root).exists() and not _contains_private(Path(root)))


@functools.cache
def _site_paths() -> list[str]:
    """The site-packages a program may import from, put on its `sys.path` by the launcher. The launcher starts
    with `-S`, so no `.pth` file runs: an editable install's import hook (20 of a program's 50 ms here) and the
    project's own code stay out of the program's reach."""
    paths = {sysconfig.get_path(name) for name in ("purelib", "platlib")}
    return sorted(p for p in paths if p and Path(p).is_dir() and not _contains_private(Path(p)))


@functools.cache
def _keep_read_search() -> bool:
    """`needs_read_search` of this process's read roots, worked out once, not per program launched."""
    return needs_read_search(_read_roots())


def needs_read_search(roots: list[str]) -> bool:
    """Whether the throw-away uid needs CAP_DAC_READ_SEARCH to reach the read roots: only when one lies under a
    folder others may not traverse (a pyenv under a 0700 /root, as on the CI machine). Python in /usr or
    /usr/local (the project's images) needs no capability at all, so none is kept (issue 14)."""
    for root in map(Path, roots):
        for folder in [root, *root.parents]:
            if folder.is_dir() and not folder.stat().st_mode & 0o001:
                return True
    return False


def _contains_private(root: Path) -> bool:
    repo = Path(__file__).resolve().parents[2]
    private = [repo, Path.home().resolve(), Path(os.environ.get("WINNOW_STORE", repo / ".winnow")).resolve()]
    root = root.resolve()
    return any(root == p or root in p.parents for p in private)


def run_sandboxed(program: str, limits: SandboxLimits, files: dict[str, str] | None = None) -> SandboxResult:
    """Run `program` (Python source) sandboxed; `files` are written beside it first. Never raises on bad
    programs: every outcome is a SandboxResult."""
    try:
        confinement(limits)
    except SandboxUnavailable as refused:  # never run it: fail closed
        return SandboxResult("sandbox_error", None, "", "", 0.0, str(refused))
    caps = sandbox_capabilities()
    workdir = Path(tempfile.mkdtemp(prefix="winnow-sandbox-"))
    uid = random.randrange(*_SANDBOX_UIDS) if caps["drop_uid"] else None
    start = time.monotonic()
    try:
        for name, text in {**(files or {}), "main.py": program}.items():
            (workdir / name).write_text(text)
        if uid is not None:
            for path in [workdir, *workdir.iterdir()]:
                os.chown(path, uid, uid)
        return _launch(workdir, uid, caps, limits, start)
    except OSError as exc:
        return SandboxResult("sandbox_error", None, "", "", time.monotonic() - start, f"{type(exc).__name__}: {exc}")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _launch(workdir: Path, uid: int | None, caps: dict, limits: SandboxLimits, start: float) -> SandboxResult:
    status_read, status_write = os.pipe()
    token = os.urandom(16).hex()
    spec = {"workdir": str(workdir), "program": str(workdir / "main.py"), "token": token, "uid": uid,
            "status_fd": status_write, "namespaces": caps["namespaces"], "landlock_abi": caps["landlock_abi"],
            "cpu_seconds": limits.cpu_seconds, "memory_bytes": limits.memory_mb << 20,
            "max_processes": limits.max_processes, "max_file_bytes": limits.max_file_mb << 20,
            "max_dir_bytes": limits.max_dir_mb << 20, "parent_pid": os.getpid(),
            "max_open_files": limits.max_open_files, "read_roots": _read_roots(), "site_paths": _site_paths(),
            "keep_read_search": _keep_read_search()}
    env = _CLEAN_ENV | {"HOME": str(workdir), "TMPDIR": str(workdir)}
    proc = subprocess.Popen([sys.executable, "-I", "-S", str(_LAUNCHER)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env, cwd=workdir, pass_fds=(status_write,),
                            start_new_session=True)
    os.close(status_write)
    proc.stdin.write(marshal.dumps(spec))  # the launcher reads it before it imports anything slow
    proc.stdin.close()
    streams, why = _collect(proc, status_read, limits)
    _, wait_status, usage = os.wait4(proc.pid, 0)  # usage includes the program, which the launcher reaped
    proc.returncode = returncode = os.waitstatus_to_exitcode(wait_status)
    wall = time.monotonic() - start
    if not why and usage.ru_utime + usage.ru_stime >= limits.cpu_seconds:
        why = "cpu_limit"
    stdout, stderr, status_text = (streams[k].decode(errors="replace") for k in ("stdout", "stderr", "status"))
    keep = limits.keep_output_chars
    return _classify(why, returncode, status_text, token, stdout[:keep], stderr[-keep:], wall, limits)


def _collect(proc: subprocess.Popen, status_fd: int, limits: SandboxLimits) -> tuple[dict[str, bytes], str]:
    """Read stdout, stderr and the status pipe until they close, the deadline passes or output overflows."""
    chunks: dict[str, list[bytes]] = {"stdout": [], "stderr": [], "status": []}
    total, cap, status_bytes = 0, limits.max_output_kb << 10, 0
    deadline = time.monotonic() + limits.wall_seconds
    why = ""
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ, "stdout")
        sel.register(proc.stderr, selectors.EVENT_READ, "stderr")
        status_file = os.fdopen(status_fd, "rb", buffering=0)
        sel.register(status_file, selectors.EVENT_READ, "status")
        while sel.get_map():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                why = "timeout"
                break
            for key, _ in sel.select(timeout=remaining):
                data = os.read(key.fd, 65536)
                if not data:
                    sel.unregister(key.fileobj)
                    continue
                chunks[key.data].append(data)
                total += len(data) if key.data != "status" else 0
                status_bytes += len(data) if key.data == "status" else 0
            # the status channel carries a 32-character token: anything much longer is an attack on the parent
            if total > cap or status_bytes > STATUS_CAP:
                why = "output_limit"
                break
        if why:
            _kill_group(proc)
        for stream in (proc.stdout, proc.stderr, status_file):
            stream.close()
    return {k: b"".join(v)[: cap + 65536] for k, v in chunks.items()}, why


def _kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL the launcher's process group; the program (PID 1 of its namespace) dies with the launcher
    (PR_SET_PDEATHSIG) and takes every process it forked with it."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _classify(why: str, returncode: int, status_text: str, token: str, stdout: str, stderr: str, wall: float,
              limits: SandboxLimits) -> SandboxResult:
    def result(status: Status, detail: str) -> SandboxResult:
        return SandboxResult(status, returncode, stdout, stderr, wall, detail)

    if why == "timeout":
        return result("timeout", f"killed after {limits.wall_seconds:g} s wall-clock")
    if why == "cpu_limit":
        return result("timeout", f"killed at its CPU-time limit of {limits.cpu_seconds} s")
    if why == "output_limit":
        return result("output_limit", f"printed more than {limits.max_output_kb} KiB")
    if "sandbox setup failed" in stderr:
        return result("sandbox_error", stderr.strip().splitlines()[-1])
    if returncode == 0 and status_text == token:
        return result("ok", "")
    if status_text.startswith("exit:"):
        return result("exited", f"the program called sys.exit({status_text[5:]}) before it finished")
    if "MemoryError" in stderr:
        return result("memory", f"ran out of its {limits.memory_mb} MiB")
    if returncode >= 128:
        sig = returncode - 128
        name = signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else str(sig)
        return result("killed", f"killed by {name}")
    if returncode == 0:
        return result("exited", "the program ended the process (os._exit) before it finished")
    last = stderr.strip().splitlines()[-1] if stderr.strip() else f"exit code {returncode}"
    return result("error", last)
