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
def rft_smoke_seed(tmp_path_factory):
    """Where tests/flows/test_rft_smoke.py leaves a copy of its finished store. Tests that run the RFT smoke flow
    again (deployments, fault injection) start from a copy of it when it is there (stores are relocatable), so
    they pay for their own subject, not for recomputing the same stages; run alone, they compute everything."""
    return tmp_path_factory.mktemp("rft-smoke-seed") / "store"


@pytest.fixture()
def warm_rft_store(rft_smoke_seed):
    """`copy_to(dest)`: copy the seeded RFT smoke store to `dest` when a finished one exists; says whether it did."""
    import shutil

    def copy_to(dest) -> bool:
        if not (rft_smoke_seed / "artifacts").is_dir():
            return False
        shutil.copytree(rft_smoke_seed, dest)
        return True

    return copy_to


def pytest_sessionfinish(session, exitstatus):
    """Stop Prefect's ephemeral API servers while output still goes somewhere: stopped at interpreter exit
    instead, they log to streams pytest has closed, and a traceback follows the test summary."""
    try:
        from prefect.server.api.server import SubprocessASGIServer
    except ImportError:
        return
    for server in list(SubprocessASGIServer._instances.values()):
        server.stop()
