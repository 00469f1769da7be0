"""Child side of the sandbox: confine this process, then run one untrusted program in it.

Started by tasks/labelling/sandbox.py as `python -I -S sandbox_launcher.py` with its spec (marshal) on stdin.
Standard library only, no Winnow imports: it must start fast and must not put the project's code or state in reach
of the program.

Confinement, strongest first (each layer is applied when the kernel allows it; `sandbox_capabilities()` in
tasks/labelling/sandbox.py reports which are active):
- new PID and network namespaces: the program is PID 1 of its own namespace (when it ends, every process it
  forked dies with it) and sees no network interface but a downed loopback;
- Landlock (Linux >= 5.13): writes, deletes and renames only beneath the fresh working directory; TCP bind and
  connect denied (ABI >= 4); no signals or abstract Unix sockets outside the sandbox (ABI >= 6);
- when started as root: a throw-away uid/gid, so RLIMIT_NPROC applies and the parent's files and
  /proc/<pid>/environ are out of reach;
- a private tmpfs over the working directory (with the namespaces): the whole directory has a size quota, and
  its contents vanish with the namespace however the run ends;
- rlimits: CPU seconds, address space, process count, file size, open files, no core dumps;
- the launcher and the program die with the process that started them (PR_SET_PDEATHSIG).
"""
import ctypes
import marshal
import os
import resource
import runpy
import signal
import sys

CLONE_NEWNS, CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET = 0x00020000, 0x10000000, 0x20000000, 0x40000000
PR_SET_PDEATHSIG, PR_SET_NO_NEW_PRIVS = 1, 38
MS_NOSUID, MS_NODEV, MS_REC, MS_PRIVATE = 2, 4, 1 << 14, 1 << 18
SYS_LANDLOCK_CREATE, SYS_LANDLOCK_ADD_RULE, SYS_LANDLOCK_RESTRICT = 444, 445, 446  # x86_64 and aarch64 alike
PR_SET_KEEPCAPS, CAP_DAC_READ_SEARCH, _CAP_VERSION_3 = 8, 2, 0x20080522
_FS_READ_RIGHTS = (1 << 0) | (1 << 2) | (1 << 3)  # EXECUTE, READ_FILE, READ_DIR
# Landlock rights that change the filesystem, by the ABI that introduced them.
_FS_WRITE_RIGHTS_BY_ABI = {
    1: (1 << 1) | (1 << 4) | (1 << 5) | (1 << 6) | (1 << 7) | (1 << 8) | (1 << 9) | (1 << 10) | (1 << 11) | (1 << 12),
    2: 1 << 13,  # REFER (link/rename across directories)
    3: 1 << 14,  # TRUNCATE
}
_LIBC = ctypes.CDLL(None, use_errno=True)


class _RulesetAttr(ctypes.Structure):
    _fields_ = [("handled_access_fs", ctypes.c_uint64), ("handled_access_net", ctypes.c_uint64),
                ("scoped", ctypes.c_uint64)]


class _PathBeneathAttr(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


def _check(result, what):
    if result < 0:
        raise OSError(ctypes.get_errno(), f"{what}: {os.strerror(ctypes.get_errno())}")
    return result


def landlock_abi():
    result = _LIBC.syscall(SYS_LANDLOCK_CREATE, None, ctypes.c_size_t(0), ctypes.c_uint32(1))
    return result if result > 0 else 0


def restrict_filesystem(workdir, read_roots, abi):
    """Landlock: reads only beneath `read_roots` (the Python installation, system libraries) and `workdir`;
    filesystem changes only beneath `workdir` (and writes to /dev/null); no TCP; no IPC out of the sandbox."""
    write_rights = 0
    for level, rights in _FS_WRITE_RIGHTS_BY_ABI.items():
        if abi >= level:
            write_rights |= rights
    fs_rights = write_rights | _FS_READ_RIGHTS
    attr = _RulesetAttr(fs_rights, 0b11 if abi >= 4 else 0, 0b11 if abi >= 6 else 0)
    size = ctypes.sizeof(_RulesetAttr) if abi >= 6 else (16 if abi >= 4 else 8)
    ruleset = _check(_LIBC.syscall(SYS_LANDLOCK_CREATE, ctypes.byref(attr), ctypes.c_size_t(size),
                                   ctypes.c_uint32(0)), "landlock_create_ruleset")
    rules = [(root, _FS_READ_RIGHTS) for root in read_roots if os.path.exists(root)]
    rules += [(workdir, fs_rights), ("/dev/null", (1 << 1) | (1 << 2)), ("/dev/urandom", 1 << 2)]
    for path, rights in rules:
        if not os.path.isdir(path):
            rights &= (1 << 0) | (1 << 1) | (1 << 2) | (1 << 14)  # file rules take file rights only
        fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
        rule = _PathBeneathAttr(rights, fd)
        _check(_LIBC.syscall(SYS_LANDLOCK_ADD_RULE, ctypes.c_int(ruleset), ctypes.c_int(1), ctypes.byref(rule),
                             ctypes.c_uint32(0)), f"landlock_add_rule({path})")
        os.close(fd)
    _check(_LIBC.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl(NO_NEW_PRIVS)")
    _check(_LIBC.syscall(SYS_LANDLOCK_RESTRICT, ctypes.c_int(ruleset), ctypes.c_uint32(0)), "landlock_restrict_self")
    os.close(ruleset)


def set_limits(spec):
    cpu = int(spec["cpu_seconds"])
    for limit, value in ((resource.RLIMIT_CPU, (cpu, cpu + 1)),
                         (resource.RLIMIT_AS, (spec["memory_bytes"],) * 2),
                         (resource.RLIMIT_NPROC, (spec["max_processes"],) * 2),
                         (resource.RLIMIT_FSIZE, (spec["max_file_bytes"],) * 2),
                         (resource.RLIMIT_NOFILE, (spec["max_open_files"],) * 2),
                         (resource.RLIMIT_CORE, (0, 0))):
        resource.setrlimit(limit, value)


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


def drop_privileges(spec):
    """Root only: become a throw-away uid (so RLIMIT_NPROC applies and root's processes are out of reach) with no
    capability, except CAP_DAC_READ_SEARCH when the parent found the interpreter's installation under a folder
    the uid cannot traverse (a 0700 home); Landlock still limits what may be read to that installation."""
    if os.getuid() != 0 or not spec.get("uid"):
        return
    _check(_LIBC.prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0), "prctl(KEEPCAPS)")
    os.setgroups([])
    os.setgid(spec["uid"])
    os.setuid(spec["uid"])
    keep = 1 << CAP_DAC_READ_SEARCH if spec.get("keep_read_search") else 0
    data = (_CapData * 2)(_CapData(keep, keep, 0), _CapData(0, 0, 0))
    _check(_LIBC.capset(ctypes.byref(_CapHeader(_CAP_VERSION_3, 0)), data), "capset")


def run_program(spec, status_fd):
    """In the confined child: run the program as __main__; report a normal finish on the status pipe."""
    os.chdir(spec["workdir"])
    sys.argv = [spec["program"]]
    sys.path[0] = spec["workdir"]
    sys.path.extend(spec.get("site_paths", []))  # where `site` would put them, without running any .pth file
    code = 0
    try:
        runpy.run_path(spec["program"], run_name="__main__")
        os.write(status_fd, spec["token"].encode())
    except SystemExit as stop:
        # sys.exit() before the end: the checks after it never ran (reported, never a pass)
        os.write(status_fd, f"exit:{stop.code!r}"[:200].encode())
        code = stop.code if isinstance(stop.code, int) else 1
    except BaseException:
        import traceback

        traceback.print_exc()
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _setup_failed(exc):
    sys.stderr.write(f"sandbox setup failed: {type(exc).__name__}: {exc}\n")
    sys.stderr.flush()
    os._exit(125)


def main():
    try:
        spec = marshal.loads(sys.stdin.buffer.read())  # from the parent; marshal, unlike json, imports nothing
        _confine_and_run(spec)
    except Exception as exc:
        _setup_failed(exc)


def private_workdir(spec):
    """A size-capped tmpfs over the working directory, in this mount namespace only: the files the parent wrote
    are carried over; writes beyond the quota fail with ENOSPC; nothing is left on the host's disk."""
    workdir = spec["workdir"]
    files = {}
    for name in os.listdir(workdir):
        with open(os.path.join(workdir, name), "rb") as fh:
            files[name] = fh.read()
    _check(_LIBC.mount(None, b"/", None, MS_REC | MS_PRIVATE, None), "mount(private /)")
    options = f"size={int(spec['max_dir_bytes'])},mode=0700".encode()
    _check(_LIBC.mount(b"tmpfs", workdir.encode(), b"tmpfs", MS_NOSUID | MS_NODEV, options), "mount(tmpfs)")
    for name, data in files.items():
        with open(os.path.join(workdir, name), "wb") as fh:
            fh.write(data)
    if os.getuid() == 0 and spec.get("uid"):
        for path in [workdir, *(os.path.join(workdir, name) for name in files)]:
            os.chown(path, spec["uid"], spec["uid"])


def _confine_and_run(spec):
    _LIBC.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)  # the labelling worker killed: the launcher goes too
    if os.getppid() != spec["parent_pid"]:  # it died before the line above took effect
        os._exit(137)
    os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
    status_fd = spec["status_fd"]
    flags = CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWNS if spec["namespaces"] else 0
    if flags and os.getuid() != 0:
        flags |= CLONE_NEWUSER
    if flags:
        _check(_LIBC.unshare(flags), "unshare")
        private_workdir(spec)
    launcher = os.getpid()
    child = os.fork()  # with CLONE_NEWPID the child is PID 1 of the new namespace
    if child == 0:
        try:
            set_limits(spec)
            drop_privileges(spec)
            # after the uid change, which clears it: the program dies with the launcher; and if the launcher
            # already died in between, it does not start at all
            _LIBC.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
            if os.getppid() != launcher and not spec["namespaces"]:
                os._exit(137)
            if spec["landlock_abi"]:
                restrict_filesystem(spec["workdir"], spec["read_roots"], spec["landlock_abi"])
        except Exception as exc:
            _setup_failed(exc)
        run_program(spec, status_fd)
    os.close(status_fd)
    _, status = os.waitpid(child, 0)
    os._exit(os.waitstatus_to_exitcode(status) % 256 if os.WIFEXITED(status) else 128 + os.WTERMSIG(status))


if __name__ == "__main__":
    main()
