"""Driving deployments on a real Prefect server from tests: `winnow serve` as its own process, waiting for a
deployment to register and for a flow run to finish, and the artifacts a run published."""
from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _serve(deployments_file: Path, store: Path, api_url: str, log: Path) -> subprocess.Popen:
    env = os.environ | {"PREFECT_API_URL": api_url, "PREFECT_RUNNER_POLL_FREQUENCY": "2"}
    return subprocess.Popen([sys.executable, "-m", "winnow.cli", "serve", "--file", str(deployments_file),
                             "--store", str(store)], cwd=ROOT, env=env, stdout=open(log, "wb"),
                            stderr=subprocess.STDOUT)


def _stop(proc: subprocess.Popen) -> int:
    proc.send_signal(signal.SIGTERM)
    return proc.wait(timeout=60)


async def _wait_for_deployment(client, name: str, proc: subprocess.Popen, log: Path):
    for _ in range(120):
        if proc.poll() is not None:
            raise AssertionError(f"winnow serve exited: {log.read_text()[-3000:]}")
        try:
            return await client.read_deployment_by_name(name)
        except Exception:
            await asyncio.sleep(1)
    raise AssertionError(f"deployment {name} never registered: {log.read_text()[-3000:]}")


async def _wait_for_run(client, flow_run_id, timeout_s: float = 600):
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        run = await client.read_flow_run(flow_run_id)
        if run.state and run.state.is_final():
            return run
        await asyncio.sleep(2)
    raise AssertionError(f"flow run {flow_run_id} not finished after {timeout_s} s")


async def _artifact_keys(client, flow_run_id) -> set[str]:
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    artifacts = await client.read_artifacts(
        artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id])))
    return {a.key for a in artifacts if a.key}
