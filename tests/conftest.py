"""Shared fixtures: a real S3 endpoint over HTTP (moto server), a store per backend, a local Ray cluster."""
from __future__ import annotations

import uuid

import pytest

from net import free_port
from winnow.env import apply_defaults

apply_defaults()


@pytest.fixture(scope="session")
def s3_endpoint():
    """moto's S3 server on a loopback port: s3fs talks real HTTP to it."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


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


def pytest_sessionfinish(session, exitstatus):
    """Stop Prefect's ephemeral API servers while output still goes somewhere: stopped at interpreter exit
    instead, they log to streams pytest has closed, and a traceback follows the test summary."""
    try:
        from prefect.server.api.server import SubprocessASGIServer
    except ImportError:
        return
    for server in list(SubprocessASGIServer._instances.values()):
        server.stop()
