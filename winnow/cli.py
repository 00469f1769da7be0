"""`winnow`: run a flow, serve it on a schedule, submit it to a Ray cluster, list artifacts, show a report."""
from __future__ import annotations

import os
import sys
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from winnow.env import apply_defaults

apply_defaults()

from flows.config import ConfigError, load_config  # noqa: E402  (after the environment defaults)

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)
console = Console()


def _flows() -> dict:
    from flows.generate import GenerateFlowConfig, generate
    from flows.reward_model import RewardModelConfig, reward_model
    from flows.rft import RFTConfig, rft
    from flows.rrtf import RRTFConfig, rrtf

    return {"rft": (RFTConfig, rft), "generate": (GenerateFlowConfig, generate),
            "reward_model": (RewardModelConfig, reward_model), "rrtf": (RRTFConfig, rrtf)}


def _load(method: str, config: str, overrides: list[str]):
    flows = _flows()
    if method not in flows:
        raise typer.BadParameter(f"unknown flow {method!r}; known: {sorted(flows)}")
    cfg_cls, flow_fn = flows[method]
    try:
        return load_config(cfg_cls, method, config, overrides), flow_fn
    except ConfigError as exc:
        console.print(f"[red]config error[/]: {exc}")
        raise typer.Exit(2)


@app.command()
def run(
    method: str = typer.Argument(..., help="flow to run, e.g. rft"),
    config: str = typer.Option("default", "--config", "-c", help="configs/<method>/<name>.yaml or a YAML path"),
    override: list[str] = typer.Option([], "--set", "-s", help="dotted override, e.g. -s sample.sampling.n=8"),
) -> None:
    """Run a flow now, in this process (Prefect ephemeral unless PREFECT_API_URL is set)."""
    cfg, flow_fn = _load(method, config, override)
    result = flow_fn(cfg)
    console.print(f"[bold green]report[/]: {result.report_uri}")


@app.command()
def serve(
    method: str = typer.Argument(...),
    config: str = typer.Option("default", "--config", "-c"),
    override: list[str] = typer.Option([], "--set", "-s"),
    cron: Optional[str] = typer.Option(None, help="cron schedule, e.g. '0 3 * * *'"),
    name: str = typer.Option("default", help="deployment name"),
) -> None:
    """Serve the flow as a Prefect deployment (runs on its cron schedule and from the UI); stop with SIGTERM."""
    cfg, flow_fn = _load(method, config, override)
    flow_fn.serve(name=f"{method}-{name}", cron=cron, parameters={"cfg": cfg.model_dump(mode="json")})


@app.command()
def submit(
    method: str = typer.Argument(...),
    config: str = typer.Option("default", "--config", "-c"),
    override: list[str] = typer.Option([], "--set", "-s"),
    address: str = typer.Option(os.environ.get("RAY_ADDRESS", "http://127.0.0.1:8265"), help="Ray dashboard"),
) -> None:
    """Submit the flow as a Ray Job: the driver runs on the cluster, stages use its actors and workers."""
    from ray.job_submission import JobSubmissionClient

    _load(method, config, override)  # fail here, not on the cluster, when the config is bad
    args = " ".join([f"-c {config}"] + [f"-s '{o}'" for o in override])
    client = JobSubmissionClient(address)
    job_id = client.submit_job(entrypoint=f"{sys.executable} -m winnow.cli run {method} {args}",
                               runtime_env={"working_dir": ".", "excludes": [".venv", ".winnow", "runs"]})
    console.print(f"submitted {job_id}; follow with: ray job logs --address {address} -f {job_id}")


@app.command(name="ls")
def list_artifacts(
    stage: Optional[str] = typer.Argument(None),
    store: str = typer.Option(os.environ.get("WINNOW_STORE", ".winnow/store"), help="store URL"),
) -> None:
    """List committed artifacts with their key metrics."""
    from tasks.store import ArtifactStore, StoreSpec

    table = Table("stage", "key", "rows/metrics", "wall s", "git")
    for m in ArtifactStore(StoreSpec(url=store)).list(stage):
        metrics = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                            for k, v in list(m.get("metrics", {}).items())[:4] if not isinstance(v, (dict, list)))
        table.add_row(m["stage"], m["key"][:12], metrics, f"{m['timings']['wall_s']:.1f}",
                      str(m.get("git_revision"))[:12])
    console.print(table)


@app.command()
def report(store: str = typer.Option(os.environ.get("WINNOW_STORE", ".winnow/store"))) -> None:
    """Print the newest report in the store."""
    from tasks.store import ArtifactStore, StoreSpec

    reports = ArtifactStore(StoreSpec(url=store)).list("write_report")
    if not reports:
        console.print("no report in the store yet")
        raise typer.Exit(1)
    newest = reports[-1]
    console.print(f"[bold]{newest['data_uri']}/report.md[/]\n")
    import fsspec

    with fsspec.open(f"{newest['data_uri']}/report.md", "r") as fh:
        console.print(fh.read())


if __name__ == "__main__":
    app()
