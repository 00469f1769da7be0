"""The sandbox against hostile programs: each must end in a recorded failure within its limits, the host unharmed.

Every program below is written so that it would exit normally (status "ok") only if its attack succeeded."""
import os
import socket
import threading

import psutil
import pytest

from tasks.labelling.sandbox import SandboxLimits, run_sandboxed, sandbox_capabilities

LIMITS = SandboxLimits(wall_seconds=4, cpu_seconds=2, memory_mb=256, max_processes=16, max_output_kb=256)
SANDBOX_UIDS = range(2_000_000_000, 2_100_000_000)


def _no_sandbox_processes_left() -> bool:
    """No process of a sandbox run is alive: by its throw-away uid (as root) or, under any uid, by the launcher's
    command line (which the program's processes inherit), so the check means something when not root too."""
    def ours(p) -> bool:
        uids, cmdline = p.info["uids"], " ".join(p.info["cmdline"] or [])
        return bool(uids and uids.real in SANDBOX_UIDS) or "sandbox_launcher" in cmdline
    return not [p for p in psutil.process_iter(["uids", "cmdline"]) if ours(p)]


def test_a_plain_program_runs_and_its_output_is_kept():
    result = run_sandboxed("import math\nprint(math.factorial(5))\nopen('here.txt', 'w').write('ok')", LIMITS)
    assert result.status == "ok" and result.stdout.strip() == "120" and result.returncode == 0


def test_the_machine_supports_every_confinement_layer():
    # CI runs on this kind of machine; if a layer goes missing the suite should say so, not silently weaken.
    caps = sandbox_capabilities()
    assert caps["namespaces"] and caps["landlock_abi"] >= 4, caps


def test_a_missing_layer_refuses_to_run_the_program(tmp_path, monkeypatch):
    """Fail closed: with Landlock off (as on a machine without it) the program never runs, and the result says
    which layer is missing, how to get it, and how to run without it on purpose."""
    monkeypatch.setenv("WINNOW_SANDBOX_DISABLE", "landlock")
    marker = tmp_path / "ran"
    refused = run_sandboxed(f"open({str(marker)!r}, 'w').write('x')", LIMITS)
    assert refused.status == "sandbox_error" and not marker.exists()
    assert "landlock is not available" in refused.detail and "allow_weaker: ['landlock']" in refused.detail
    weaker = run_sandboxed("print('ran anyway')", LIMITS.model_copy(update={"allow_weaker": ["landlock"]}))
    assert weaker.status == "ok" and weaker.stdout.strip() == "ran anyway"


def test_the_label_stage_refuses_at_start_when_a_layer_is_missing(tmp_path, monkeypatch):
    from tasks.core.stage_cache import StageContext
    from tasks.core.store import ArtifactRef, ArtifactStore, StoreSpec
    from tasks.labelling.label import LabelConfig, label_rewards
    from tasks.labelling.sandbox import SandboxUnavailable

    monkeypatch.setenv("WINNOW_SANDBOX_DISABLE", "namespaces")
    ctx = StageContext(store=StoreSpec(url=str(tmp_path / "store")), show_progress=False)
    nowhere = ArtifactRef(stage="x", key="0" * 32, uri=str(tmp_path / "none"), content_hash="0")
    with pytest.raises(SandboxUnavailable, match="namespaces is not available"):
        label_rewards.fn("t", nowhere, nowhere, LabelConfig(labeller="unit_tests"), ctx)
    assert not ArtifactStore(ctx.store).list()  # refused before reading or committing anything


def test_the_repository_the_store_and_home_are_unreadable():
    from pathlib import Path

    repo = Path(__file__).resolve().parents[3]
    for secret in (repo / "README.md", repo / "tasks" / "labelling" / "sandbox.py", Path.home() / ".bashrc"):
        if secret.exists():
            result = run_sandboxed(f"print(open({str(secret)!r}).read()[:20])", LIMITS)
            assert result.status == "error" and "PermissionError" in result.detail, (secret, result)


def test_installed_packages_import_but_the_projects_code_does_not():
    # the launcher starts with -S: site-packages are on the path, but no .pth file runs (an editable install's
    # import hook would map `tasks` to the repository)
    installed = run_sandboxed("import packaging\nprint(packaging.__name__)", LIMITS)
    assert installed.status == "ok" and installed.stdout.strip() == "packaging", installed
    project = run_sandboxed("import tasks.labelling.sandbox", LIMITS)
    assert project.status == "error" and "ModuleNotFoundError" in project.detail, project


def test_fork_bomb_is_bounded_and_leaves_no_process_behind():
    result = run_sandboxed("import os\nwhile True:\n    os.fork()", LIMITS)
    assert result.status in ("error", "killed", "timeout") and result.wall_s < LIMITS.wall_seconds + 2
    assert _no_sandbox_processes_left()


def test_infinite_loop_is_stopped_by_the_cpu_limit():
    result = run_sandboxed("while True:\n    pass", LIMITS)
    assert result.status == "timeout" and "CPU-time limit" in result.detail
    assert result.wall_s < LIMITS.wall_seconds + 2


def test_sleeping_forever_is_stopped_by_the_wall_clock_limit():
    result = run_sandboxed("import time\ntime.sleep(60)", LIMITS)
    assert result.status == "timeout" and result.wall_s < LIMITS.wall_seconds + 2


def test_memory_bomb_is_stopped():
    result = run_sandboxed("blocks = []\nwhile True:\n    blocks.append(bytearray(64 << 20))", LIMITS)
    assert result.status == "memory", result


def test_os_system_and_subprocess_cannot_touch_the_host(tmp_path):
    target = tmp_path / "pwned"
    shell = run_sandboxed(f"import os\nassert os.system('touch {target}') == 0", LIMITS)
    child = run_sandboxed(f"import subprocess\nsubprocess.run(['touch', '{target}'], check=True)", LIMITS)
    assert shell.status == "error" and child.status == "error"
    assert not target.exists()


def test_no_network_not_even_the_hosts_loopback():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    server.settimeout(6)
    accepted = []
    threading.Thread(target=lambda: accepted.append(_accept(server)), daemon=True).start()
    port = server.getsockname()[1]
    result = run_sandboxed(f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=2)", LIMITS)
    outside = run_sandboxed("import socket\nsocket.create_connection(('1.1.1.1', 53), timeout=2)", LIMITS)
    udp = run_sandboxed("import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
                        "s.sendto(b'x', ('8.8.8.8', 53))", LIMITS)
    assert result.status == outside.status == udp.status == "error"
    server.close()
    assert accepted in ([], [None])


def _accept(server):
    try:
        return server.accept()
    except OSError:
        return None


def test_writing_or_deleting_outside_its_directory_fails(tmp_path):
    keep = tmp_path / "keep.txt"
    keep.write_text("precious")
    os.chmod(tmp_path, 0o777)  # even a world-writable directory is out of reach
    write = run_sandboxed(f"open('{tmp_path}/new.txt', 'w').write('x')", LIMITS)
    delete = run_sandboxed(f"import os\nos.remove('{keep}')", LIMITS)
    tmp = run_sandboxed("open('/tmp/winnow-sandbox-escape', 'w').write('x')", LIMITS)
    assert write.status == delete.status == tmp.status == "error"
    assert keep.read_text() == "precious" and not (tmp_path / "new.txt").exists()
    assert not os.path.exists("/tmp/winnow-sandbox-escape")


def test_the_parents_environment_is_out_of_reach(monkeypatch):
    monkeypatch.setenv("WINNOW_TEST_SECRET", "hunter2-credentials")
    own_env = run_sandboxed("import os\nprint(os.environ['WINNOW_TEST_SECRET'])", LIMITS)
    parent = run_sandboxed(f"print(open('/proc/{os.getpid()}/environ').read())", LIMITS)
    scan = run_sandboxed("import os\nfound = [open(f'/proc/{p}/environ').read() for p in os.listdir('/proc') "
                         "if p.isdigit()]\nassert any('hunter2' in e for e in found)", LIMITS)
    assert own_env.status == parent.status == scan.status == "error"
    assert all("hunter2" not in r.stdout + r.stderr for r in (own_env, parent, scan))


def test_printing_a_gigabyte_is_cut_off():
    result = run_sandboxed("import sys\nfor _ in range(1 << 14):\n    sys.stdout.write('x' * 65536)", LIMITS)
    assert result.status == "output_limit" and result.wall_s < LIMITS.wall_seconds
    assert len(result.stdout) <= LIMITS.keep_output_chars


def test_exiting_early_is_not_a_pass():
    assert run_sandboxed("import sys\nsys.exit(0)\nassert False", LIMITS).status == "exited"
    assert run_sandboxed("import os\nos._exit(0)", LIMITS).status == "exited"


def test_segfault_is_recorded():
    result = run_sandboxed("import ctypes\nctypes.string_at(0)", LIMITS)
    assert result.status == "killed" and "SIGSEGV" in result.detail


@pytest.mark.parametrize("program", ["raise ValueError('bad')", "def f(:\n    pass"])
def test_exceptions_and_syntax_errors_are_errors_with_their_text(program):
    result = run_sandboxed(program, LIMITS)
    assert result.status == "error" and ("ValueError: bad" in result.detail or "SyntaxError" in result.detail)


def test_flooding_the_status_channel_is_cut_off():
    """The program runs in the launcher's interpreter and can find the status descriptor: writing to it is capped
    (it once grew the parent by 600 MiB), and the flood is never a pass."""
    flood = ("import os\nfor fd in range(3, 64):\n    try:\n        for _ in range(4096):\n"
             "            os.write(fd, b'x' * 65536)\n    except OSError:\n        pass\n")
    result = run_sandboxed(flood, LIMITS)
    assert result.status == "output_limit" and result.wall_s < LIMITS.wall_seconds + 2



def test_the_whole_working_directory_has_a_quota_and_nothing_is_left_on_disk():
    """RLIMIT_FSIZE bounds one file; many files (360 MiB once) are bounded by the tmpfs quota of the directory."""
    import glob
    import tempfile

    before = set(glob.glob(f"{tempfile.gettempdir()}/winnow-sandbox-*"))
    many = ("import os\nfor i in range(40):\n    with open(f'f{i}', 'wb') as fh:\n        fh.write(b'x' * (8 << 20))\n"
            "print('wrote 320 MiB')")
    result = run_sandboxed(many, LIMITS.model_copy(update={"max_dir_mb": 32}))
    assert result.status == "error" and "No space left on device" in result.detail, result
    assert set(glob.glob(f"{tempfile.gettempdir()}/winnow-sandbox-*")) <= before


def test_killing_the_parent_kills_the_launcher_and_the_program(tmp_path):
    """A chunk timeout kills the labelling worker (ray.cancel(force=True)): its sandboxes must not live on."""
    import subprocess
    import sys
    import time

    script = tmp_path / "parent.py"
    script.write_text("from tasks.labelling.sandbox import SandboxLimits, run_sandboxed\n"
                      "run_sandboxed('import time\\ntime.sleep(120)', SandboxLimits(wall_seconds=100, "
                      "cpu_seconds=100))\n")
    parent = subprocess.Popen([sys.executable, str(script)], cwd=os.getcwd(), env=os.environ | {"PYTHONPATH": os.getcwd()})
    deadline = time.time() + 30
    while time.time() < deadline and len([c for c in psutil.Process(parent.pid).children(recursive=True)
                                          if "sandbox_launcher" in " ".join(c.cmdline())]) < 2:
        time.sleep(0.2)  # the launcher and the program it forked
    time.sleep(0.5)
    family = psutil.Process(parent.pid).children(recursive=True)
    assert any("sandbox_launcher" in " ".join(c.cmdline()) for c in family)
    parent.kill()
    parent.wait()
    gone, alive = psutil.wait_procs(family, timeout=10)
    assert not alive, [(p.pid, p.cmdline()) for p in alive]


def test_no_capability_is_kept_unless_the_interpreter_sits_behind_a_private_folder():
    import shutil
    import tempfile
    from pathlib import Path

    from tasks.labelling.sandbox import needs_read_search

    top = Path(tempfile.mkdtemp(dir="/tmp"))  # not under pytest's 0700 temp root
    try:
        top.chmod(0o755)
        (top / "open" / "lib").mkdir(parents=True)
        (top / "open").chmod(0o755)
        (top / "open" / "lib").chmod(0o755)
        (top / "home").mkdir(mode=0o700)
        (top / "home" / "lib").mkdir(mode=0o755)
        assert not needs_read_search([str(top / "open" / "lib"), "/usr"])
        assert needs_read_search([str(top / "open" / "lib"), str(top / "home" / "lib")])
    finally:
        shutil.rmtree(top)


@pytest.mark.skipif(os.getuid() != 0, reason="the uid (and capabilities) are dropped only as root")
def test_the_program_runs_with_no_capability_but_the_one_its_interpreter_needs():
    from tasks.labelling.sandbox import _read_roots, needs_read_search

    # capget(2) through ctypes (Landlock keeps /proc/self/status out of reach)
    program = ("import ctypes, os\nhead, data = (ctypes.c_uint32 * 2)(0x20080522, 0), (ctypes.c_uint32 * 6)()\n"
               "assert ctypes.CDLL(None).capget(head, data) == 0\nprint(data[0], data[1], os.getuid())")
    result = run_sandboxed(program, LIMITS)
    effective, permitted, uid = map(int, result.stdout.split())
    expected = 1 << 2 if needs_read_search(_read_roots()) else 0  # CAP_DAC_READ_SEARCH is capability 2
    assert (effective, permitted) == (expected, expected) and uid in SANDBOX_UIDS
