"""`winnow submit` against a real Ray head on loopback: the flow runs as a Ray Job and its artifacts land in the
shared (moto S3) store."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

from net import free_port

from tasks.core.store import ArtifactStore, StoreSpec

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]



@pytest.fixture()
def ray_head(tmp_path):
    """`ray start --head --block` in its own process group; killing the group takes the head down (a plain
    `ray stop` would stop every Ray instance on the machine, the test session's own included)."""
    port, dashboard = free_port(), free_port()
    temp_dir = tempfile.mkdtemp(prefix="rh-", dir="/tmp")  # Ray's socket paths must stay under 107 bytes
    token = uuid.uuid4().hex  # the cluster runs with token auth, as infra/ starts it (docs/deploy.md)
    ray_cli = Path(sys.executable).with_name("ray")
    # every port of its own: the test session's in-process cluster already holds Ray's default agent ports,
    # and a head whose dashboard agent cannot bind takes no jobs ("No available agent to submit job")
    ports = [f"--{name}={free_port()}" for name in ("dashboard-agent-listen-port", "dashboard-agent-grpc-port",
                                                       "metrics-export-port", "ray-client-server-port",
                                                       "runtime-env-agent-port", "node-manager-port",
                                                       "object-manager-port")]
    proc = subprocess.Popen([str(ray_cli), "start", "--head", "--block", f"--port={port}", "--num-cpus=2", *ports,
                             "--node-ip-address=127.0.0.1", "--dashboard-host=127.0.0.1",
                             f"--dashboard-port={dashboard}", "--disable-usage-stats",
                             f"--temp-dir={temp_dir}"],
                            env=os.environ | {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token}, stdout=open(tmp_path / "head.log", "wb"),
                            stderr=subprocess.STDOUT, start_new_session=True)
    address = f"http://127.0.0.1:{dashboard}"
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            probe = urllib.request.Request(f"{address}/api/version", headers={"Authorization": f"Bearer {token}"})
            with urllib.request.urlopen(probe, timeout=2):
                break
        except OSError:
            time.sleep(1)
    else:
        os.killpg(proc.pid, signal.SIGKILL)
        raise AssertionError((tmp_path / "head.log").read_text()[-3000:])
    yield address, token
    # SIGKILL, not a graceful stop (which took 35 s): the head's processes are its group and whatever names its
    # own temp dir (workers the raylet started), and nothing of them is under test once the job is done
    import psutil

    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    strays = [p for p in psutil.process_iter(["cmdline"]) if temp_dir in " ".join(p.info["cmdline"] or [])]
    for stray in strays:
        try:
            stray.kill()
        except psutil.Error:  # already gone
            pass
    psutil.wait_procs(strays, timeout=10)
    shutil.rmtree(temp_dir, ignore_errors=True)


def _seed_bucket(fs, seed: Path, prefix: str) -> None:
    """The finished RFT smoke store (conftest.rft_smoke_seed) as the bucket's starting content, when there is one:
    what is tested here is the submission and the S3 store, not the stages again."""
    if not (seed / "artifacts").is_dir():
        return
    files = [p for p in seed.rglob("*") if p.is_file()]
    fs.put([str(p) for p in files], [f"{prefix}/{p.relative_to(seed).as_posix()}" for p in files])


@pytest.mark.reuses_smoke_runs
def test_submit_runs_the_flow_as_a_ray_job_with_artifacts_in_s3(ray_head, s3_endpoint, rft_smoke_seed, tmp_path):
    import s3fs

    address, token = ray_head
    bucket = f"winnow-{uuid.uuid4().hex[:8]}"
    options = {"key": "testing", "secret": "testing", "client_kwargs": {"endpoint_url": s3_endpoint}}
    fs = s3fs.S3FileSystem(**options)
    fs.mkdir(bucket)
    _seed_bucket(fs, rft_smoke_seed, f"{bucket}/jobs")
    store = f"s3://{bucket}/jobs"
    cmd = [sys.executable, "-m", "winnow.cli", "submit", "rft", "-c", "smoke", "-s", f"store.url={store}",
           "-s", f"store.storage_options={json.dumps(options)}", "-s", "eval.maj=null",
           "--address", address, "--python", sys.executable, "--wait"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_AUTH_TOKEN")}
    env |= {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}

    # the Jobs API is closed without the token: to a bare request, and to `winnow submit` (which says what to pass)
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"{address}/api/jobs/", timeout=10)
    assert refused.value.code == 401
    denied = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120, env=env)
    assert denied.returncode == 2 and "--token-file" in denied.stdout, denied.stdout[-2000:] + denied.stderr[-2000:]

    (tmp_path / "token").write_text(token + "\n")
    done = subprocess.run(cmd + ["--token-file", str(tmp_path / "token")], cwd=ROOT, capture_output=True, text=True,
                          timeout=900, env=env)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "SUCCEEDED" in done.stdout
    artifacts = ArtifactStore(StoreSpec(url=store, storage_options=options))
    stages = {m["stage"] for m in artifacts.list()}
    assert {"train_sft", "sample_completions", "label_rewards", "write_report"} <= stages
    report = artifacts.list("write_report")[-1]
    assert artifacts.fs.exists(report["data_uri"].removeprefix("s3://") + "/report.md")
