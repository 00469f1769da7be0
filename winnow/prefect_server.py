"""A local Prefect server (API + UI) as a child process, for `winnow server` and the deployment tests."""
from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Iterator


def wait_healthy(api_url: str, timeout_s: float, proc: subprocess.Popen | None = None) -> None:
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"prefect server exited with code {proc.returncode} before it was healthy")
        try:
            with urllib.request.urlopen(f"{api_url}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"prefect server at {api_url} not healthy after {timeout_s:.0f} s")


@contextlib.contextmanager
def local_prefect_server(host: str = "127.0.0.1", port: int = 4200, home: str | None = None,
                         log_path: Path | None = None, timeout_s: float = 120,
                         extra_env: dict[str, str] | None = None) -> Iterator[str]:
    """Start `prefect server start` (its database under `home`, default .winnow/prefect), yield its API URL with
    PREFECT_API_URL pointing at it for this process, and stop the server (SIGTERM, then SIGKILL) on exit."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    home = home or os.path.abspath(".winnow/prefect")
    Path(home).mkdir(parents=True, exist_ok=True)
    api_url = f"http://{host}:{port}/api"
    # the UI (a page in the browser) must call this server's API, not the default port
    env = os.environ | {"PREFECT_HOME": home, "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
                        "PREFECT_UI_API_URL": api_url, "PREFECT_SERVER_UI_API_URL": api_url} | (extra_env or {})
    env.pop("PREFECT_API_URL", None)
    log = open(log_path or Path(home) / "server.log", "ab")
    proc = subprocess.Popen([sys.executable, "-m", "prefect", "server", "start", "--host", host, "--port", str(port)],
                            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    previous = signal.getsignal(signal.SIGTERM)
    if threading.current_thread() is threading.main_thread():  # SIGTERM unwinds like Ctrl-C: the server stops too
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        wait_healthy(api_url, timeout_s, proc)
        os.environ["PREFECT_API_URL"] = api_url  # child processes (served flow runs, Ray workers) inherit it
        with temporary_settings({PREFECT_API_URL: api_url}):
            yield api_url
    finally:
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, previous)
        os.environ.pop("PREFECT_API_URL", None)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()
