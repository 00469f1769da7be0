"""Submitting a flow run to a Ray cluster through the Ray Jobs API."""
from __future__ import annotations

import os
import shlex
import time

# What the driver on the cluster needs from here: the store's credentials / endpoint, where Prefect is, and the
# process defaults Winnow sets (winnow/env.py).
FORWARDED = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_REGION",
             "AWS_DEFAULT_REGION", "PREFECT_API_URL", "PREFECT_API_KEY", "PREFECT_API_AUTH_STRING", "WINNOW_STORE",
             "HF_HUB_OFFLINE")
EXCLUDES = [".venv", ".winnow", ".git", "runs", "*.egg-info", "__pycache__", ".whl"]


def job_runtime_env(working_dir: str = ".") -> dict:
    """The project as the job's working directory (uploaded by Ray), plus the forwarded variables. Not Ray's own
    auth settings: the driver inherits the cluster's (a token cluster's driver must join it with the token)."""
    from ray_cluster.connect import _FORWARDED_ENV  # what engines and Train workers need (vLLM CPU settings, ...)

    env = {k: os.environ[k] for k in (*FORWARDED, *_FORWARDED_ENV) if k in os.environ}
    return {"working_dir": working_dir, "excludes": EXCLUDES, "env_vars": env}


def ray_token(token_file: str | None = None) -> str | None:
    """The cluster's auth token: `--token-file`, else RAY_AUTH_TOKEN, else the file RAY_AUTH_TOKEN_PATH names
    (Ray's own order, after the explicit option); None for a cluster without token auth."""
    path = token_file or (None if os.environ.get("RAY_AUTH_TOKEN") else os.environ.get("RAY_AUTH_TOKEN_PATH"))
    if path:
        try:
            return open(os.path.expanduser(path)).read().strip()
        except OSError as exc:
            raise FileNotFoundError(f"Ray token file {path}: {exc.strerror}") from exc
    return os.environ.get("RAY_AUTH_TOKEN") or None


class ClusterAuthError(PermissionError):
    pass


def _client(address: str, token: str | None):
    """A Jobs API client that sends the token; a refusal is said in words (which cluster, what to pass)."""
    from ray.job_submission import JobSubmissionClient

    headers = {"Authorization": f"Bearer {token}"} if token else None
    try:
        return JobSubmissionClient(address, headers=headers)
    except Exception as exc:
        if "401" in str(exc) or "403" in str(exc) or "nauthori" in str(exc) or "orbidden" in str(exc):
            raise ClusterAuthError(
                f"the Ray cluster at {address} refused the request ({'wrong token' if token else 'no token'}): "
                "pass --token-file PATH or set RAY_AUTH_TOKEN to the cluster's token (docs/deploy.md)") from exc
        raise


def entrypoint(python: str, method: str, config: str, overrides: list[str]) -> str:
    args = ["-m", "winnow.cli", "run", method, "-c", config] + [a for o in overrides for a in ("-s", o)]
    return " ".join([shlex.quote(python)] + [shlex.quote(a) for a in args])


def _submit_when_ready(client, command: str, runtime_env: dict, patience_s: float = 120) -> str:
    """Submit, retrying while the head's job agent is still starting (a fresh head answers HTTP before its agent
    can take jobs: "No available agent to submit job")."""
    deadline = time.time() + patience_s
    while True:
        try:
            return client.submit_job(entrypoint=command, runtime_env=runtime_env)
        except RuntimeError as exc:
            if "No available agent" not in str(exc) or time.time() > deadline:
                raise
            time.sleep(2)


def submit_flow(address: str, method: str, config: str, overrides: list[str], python: str = "python",
                wait: bool = False, timeout_s: float = 3600, token: str | None = None) -> tuple[str, str, str]:
    """(job id, status, logs); status and logs are final when `wait`, else the current ones."""
    from ray.job_submission import JobStatus

    client = _client(address, token)
    job_id = _submit_when_ready(client, entrypoint(python, method, config, overrides), job_runtime_env())
    deadline = time.time() + timeout_s
    status = client.get_job_status(job_id)
    while wait and status not in (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.STOPPED):
        if time.time() > deadline:
            client.stop_job(job_id)
            break
        time.sleep(2)
        status = client.get_job_status(job_id)
    return job_id, str(status.value if hasattr(status, "value") else status), client.get_job_logs(job_id)
