"""Shared fixtures: a real S3 endpoint over HTTP (moto server), a store per backend, a local Ray cluster."""
from __future__ import annotations

import uuid

import pytest

from net import free_port
from winnow.env import apply_defaults

apply_defaults()


@pytest.fixture(scope="session")
def s3_endpoint():
    """moto's S3 server on a loopback port, in its own process: s3fs talks real HTTP to it. Not in this process:
    moto's Flask puts werkzeug proxies in reach of `sys.modules`, and vLLM's CPU kernel registration, which walks
    them, then fails with "Working outside of application context" in every later in-process vLLM test."""
    import socket
    import subprocess
    import sys
    import time

    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if time.time() > deadline or server.poll() is not None:
                server.kill()
                raise RuntimeError(f"moto server did not start on port {port} (exit {server.poll()})")
            time.sleep(0.2)
    yield f"http://127.0.0.1:{port}"
    server.terminate()
    server.wait(timeout=10)


@pytest.fixture()
def s3_store_spec(s3_endpoint):
    import s3fs

    from tasks.core.store import StoreSpec

    # no region_name: moto refuses a bucket-creation request that names one (shared/STACK.md)
    options = {"key": "testing", "secret": "testing", "client_kwargs": {"endpoint_url": s3_endpoint}}
    bucket = f"winnow-{uuid.uuid4().hex[:8]}"
    s3fs.S3FileSystem(**options).mkdir(bucket)
    return StoreSpec(url=f"s3://{bucket}/prefix", storage_options=options)


@pytest.fixture(params=["file", "s3"])
def store_spec(request, tmp_path):
    """The same tests against a local folder and against S3 over HTTP."""
    from tasks.core.store import StoreSpec

    if request.param == "file":
        return StoreSpec(url=str(tmp_path / "store"))
    return request.getfixturevalue("s3_store_spec").model_copy(update={"cache_dir": str(tmp_path / "cache")})


@pytest.fixture(scope="session")
def ray_local():
    from ray_cluster.connect import RayConfig, ensure_ray, shutdown_ray

    ensure_ray(RayConfig(num_cpus=2, object_store_mb=256))
    yield
    shutdown_ray()


@pytest.fixture(scope="session")
def smoke_stores(tmp_path_factory):
    """Where each flow's smoke test (tests/flows/test_<flow>_smoke.py) leaves a copy of its finished store, by flow
    name. Tests that run the same flows again (deployments, Ray Job submission, the benchmarks, fault injection)
    start from those copies when they are there (stores are relocatable), so they pay for their own subject, not
    for recomputing the same stages; run alone, they compute everything. They carry the marker
    `reuses_smoke_runs` and run after every other test (pytest_collection_modifyitems)."""
    return tmp_path_factory.mktemp("smoke-stores")


@pytest.fixture(scope="session")
def rft_smoke_seed(smoke_stores):
    return smoke_stores / "rft"


@pytest.fixture()
def keep_smoke_store(smoke_stores):
    """`keep(flow, store_dir)`: a flow's smoke test keeps a copy of its store once it is final."""
    import shutil

    return lambda flow, store_dir: shutil.copytree(store_dir, smoke_stores / flow, dirs_exist_ok=True)


@pytest.fixture()
def warm_store(smoke_stores):
    """`copy_to(dest, *flows)`: merge the kept smoke stores of `flows` into `dest`; the flows that had one."""
    import shutil

    def copy_to(dest, *flows: str) -> list[str]:
        found = [f for f in flows if (smoke_stores / f / "artifacts").is_dir()]
        for flow in found:
            shutil.copytree(smoke_stores / flow, dest, dirs_exist_ok=True)
        return found

    return copy_to


@pytest.fixture()
def warm_rft_store(warm_store):
    return lambda dest: bool(warm_store(dest, "rft"))


def pytest_collection_modifyitems(config, items):
    """Tests that start from the smoke tests' stores run last, after those tests (a stable sort); one that reuses
    a store which itself reuses another's (`reuses_smoke_runs(after=2)`) runs after that one."""
    def order(item) -> int:
        marker = item.get_closest_marker("reuses_smoke_runs")
        return 0 if marker is None else marker.kwargs.get("after", 1)

    items.sort(key=order)


def pytest_sessionfinish(session, exitstatus):
    """Stop Prefect's ephemeral API servers while output still goes somewhere: stopped at interpreter exit
    instead, they log to streams pytest has closed, and a traceback follows the test summary."""
    try:
        from prefect.server.api.server import SubprocessASGIServer
    except ImportError:
        return
    for server in list(SubprocessASGIServer._instances.values()):
        server.stop()
