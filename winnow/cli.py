"""`winnow`: run a flow, serve deployments (on schedules, from the UI), start a local Prefect server, submit a
flow to a Ray cluster, list artifacts, show a report."""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from winnow.env import apply_defaults

apply_defaults()

from flows.config import DEFAULT_STORE, STORE_ENV, ConfigError, load_config  # noqa: E402  (after the environment defaults)
from winnow.deployments import DEPLOYMENTS_FILE  # noqa: E402
from winnow.models_cli import models_app  # noqa: E402

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)
console = Console()


def _flows() -> dict:
    from flows.dpo import DPOFlowConfig, dpo
    from flows.evaluate_latest import EvaluateLatestConfig, evaluate_latest
    from flows.evaluation import EvaluateFlowConfig, evaluate
    from flows.evol_instruct import EvolInstructConfig, evol_instruct
    from flows.generate import GenerateFlowConfig, generate
    from flows.grpo import GRPOConfig, grpo
    from flows.improve import ImproveConfig, improve
    from flows.instruction_reward import InstructionRewardConfig, instruction_reward
    from flows.ppo import PPOConfig, ppo
    from flows.process_reward import ProcessRewardConfig, process_reward
    from flows.reward_model import RewardModelConfig, reward_model
    from flows.rft import RFTConfig, rft
    from flows.rrtf import RRTFConfig, rrtf
    from flows.self_instruct import SelfInstructConfig, self_instruct

    return {"rft": (RFTConfig, rft), "generate": (GenerateFlowConfig, generate),
            "reward_model": (RewardModelConfig, reward_model), "rrtf": (RRTFConfig, rrtf), "dpo": (DPOFlowConfig, dpo),
            "grpo": (GRPOConfig, grpo), "ppo": (PPOConfig, ppo), "improve": (ImproveConfig, improve),
            "evaluate_latest": (EvaluateLatestConfig, evaluate_latest), "evaluate": (EvaluateFlowConfig, evaluate),
            "evol_instruct": (EvolInstructConfig, evol_instruct),  # issue 17: instruction synthesis
            "self_instruct": (SelfInstructConfig, self_instruct),
            "process_reward": (ProcessRewardConfig, process_reward),  # issue 17: Math-Shepherd PRM vs ORM
            "instruction_reward": (InstructionRewardConfig, instruction_reward)}  # issue 17: WizardMath's IRM


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
    result = flow_fn(cfg)  # every flow returns a flows.base.FlowResult
    console.print(f"[bold green]report[/]: {result.report_uri}  ({result.wall_s:.0f} s)")


def _deployments(names: list[str], file: str, store: Optional[str]) -> list:
    from winnow.deployments import build_deployments, read_deployments

    try:
        specs = read_deployments(Path(file))
        unknown = sorted(set(names) - {s.name for s in specs})
        if unknown:
            raise ConfigError(f"{file}: no deployment named {unknown}; known: {[s.name for s in specs]}")
        return build_deployments([s for s in specs if not names or s.name in names], _flows(), store)
    except ConfigError as exc:
        console.print(f"[red]config error[/]: {exc}")
        raise typer.Exit(2)


@app.command()
def serve(
    names: list[str] = typer.Argument(None, help="deployments to serve (default: all in the file)"),
    file: str = typer.Option(str(DEPLOYMENTS_FILE), help="deployments file"),
    store: Optional[str] = typer.Option(None, help="store URL for every deployment (overrides the configs)"),
) -> None:
    """Register the deployments with the Prefect API (PREFECT_API_URL) and run their flow runs: scheduled, from
    the UI, or from `prefect deployment run`. Stops on SIGTERM or Ctrl-C."""
    from prefect import serve as prefect_serve

    deployments = _deployments(names or [], file, store)
    console.print(f"serving {[d.name for d in deployments]} against {os.environ.get('PREFECT_API_URL', 'ephemeral')}")
    prefect_serve(*deployments)


@app.command()
def server(
    names: list[str] = typer.Argument(None, help="deployments to serve (default: all in the file)"),
    port: int = typer.Option(4200, help="Prefect server port (UI at http://127.0.0.1:PORT)"),
    host: str = typer.Option("127.0.0.1"),
    file: str = typer.Option(str(DEPLOYMENTS_FILE)),
    store: Optional[str] = typer.Option(None, help="store URL for every deployment"),
) -> None:
    """Start a local Prefect server + UI and serve the deployments next to it; Ctrl-C or SIGTERM stops both."""
    from winnow.prefect_server import local_prefect_server

    deployments = _deployments(names or [], file, store)  # a bad config fails before the server starts
    with local_prefect_server(host, port) as api_url:
        console.print(f"Prefect UI: [bold]{api_url.removesuffix('/api')}[/]  (API {api_url})")
        from prefect import serve as prefect_serve

        prefect_serve(*deployments)


@app.command()
def submit(
    method: str = typer.Argument(...),
    config: str = typer.Option("default", "--config", "-c"),
    override: list[str] = typer.Option([], "--set", "-s"),
    address: str = typer.Option(os.environ.get("RAY_ADDRESS", "http://127.0.0.1:8265"), help="Ray dashboard"),
    python: str = typer.Option("python", help="interpreter on the cluster nodes (the image's)"),
    wait: bool = typer.Option(False, help="follow the job until it ends; exit 1 if it failed"),
    token_file: Optional[str] = typer.Option(None, help="the cluster's Ray auth token (default: RAY_AUTH_TOKEN, "
                                                         "then the file RAY_AUTH_TOKEN_PATH names)"),
) -> None:
    """Submit the flow as a Ray Job: the driver runs on the cluster, stages use its actors and workers. The
    store must be shared storage (s3://...) so that every node and you can read the artifacts."""
    from winnow.submission import ClusterAuthError, ray_token, submit_flow

    cfg, _ = _load(method, config, override)  # fail here, not on the cluster, when the config is bad
    if "://" not in cfg.store.url or cfg.store.url.startswith("file://"):
        console.print(f"[yellow]warning[/]: store.url={cfg.store.url} is a local path; on a multi-node cluster use "
                      "s3://bucket/prefix")
    try:
        job_id, status, logs = submit_flow(address, method, config, override, python, wait, token=ray_token(token_file))
    except (ClusterAuthError, FileNotFoundError) as exc:
        console.print(f"[red]error[/]: {exc}")
        raise typer.Exit(2)
    console.print(f"submitted {job_id}; follow with: ray job logs --address {address} -f {job_id}")
    if wait:
        console.print(logs[-3000:])
        console.print(f"job {job_id}: {status}")
        if status != "SUCCEEDED":
            raise typer.Exit(1)


@app.command(name="ls")
def list_artifacts(
    stage: Optional[str] = typer.Argument(None),
    store: str = typer.Option(os.environ.get(STORE_ENV, DEFAULT_STORE), help="store URL"),
) -> None:
    """List committed artifacts with their key metrics."""
    from tasks.core.store import ArtifactStore, StoreSpec

    table = Table("stage", "key", "rows/metrics", "wall s", "git")
    for m in ArtifactStore(StoreSpec(url=store)).list(stage):
        metrics = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                            for k, v in list(m.get("metrics", {}).items())[:4] if not isinstance(v, (dict, list)))
        table.add_row(m["stage"], m["key"][:12], metrics, f"{m['timings']['wall_s']:.1f}",
                      str(m.get("git_revision"))[:12])
    console.print(table)


@app.command()
def report(
    flow: Optional[str] = typer.Argument(None, help="only this flow's reports, e.g. rft, rrtf, reward_model, dpo"),
    store: str = typer.Option(os.environ.get(STORE_ENV, DEFAULT_STORE)),
    all_reports: bool = typer.Option(False, "--all", help="list every report instead of printing the newest"),
) -> None:
    """Print the newest report in the store (of one flow), or list them all."""
    import fsspec

    from tasks.core.store import ArtifactStore, StoreSpec

    artifacts = ArtifactStore(StoreSpec(url=store))
    reports = [m for m in artifacts.list("write_report")
               if flow is None or m.get("metrics", {}).get("flow") == flow]
    if not reports:
        known = sorted({m.get("metrics", {}).get("flow") for m in artifacts.list("write_report")}
                       - {None})
        console.print(f"no {flow + ' ' if flow else ''}report in {store} yet" + (f" (flows with reports: {known})"
                                                                               if known else ""))
        raise typer.Exit(1)
    if all_reports:
        table = Table("flow", "title", "report", "created")
        for m in reports:
            table.add_row(m["metrics"].get("flow", "?"), m["metrics"].get("title", ""),
                          f"{artifacts.data_uri(m)}/report.md",
                          time.strftime("%Y-%m-%d %H:%M", time.localtime(m.get("created_at", 0))))
        console.print(table)
        return
    newest = reports[-1]
    console.print(f"[bold]{artifacts.data_uri(newest)}/report.md[/]\n")
    with fsspec.open(f"{artifacts.data_uri(newest)}/report.md", "r") as fh:
        console.print(fh.read())


app.add_typer(models_app, name="models")


@app.command()
def lineage(
    target: str = typer.Argument(..., help="a registered model (name or name:version) or an artifact (stage/key)"),
    store: str = typer.Option(os.environ.get(STORE_ENV, DEFAULT_STORE), help="store URL"),
    png: Optional[Path] = typer.Option(None, help="also draw the graph here"),
) -> None:
    """Print (and draw) the graph of stages, data and models that produced a model or artifact."""
    from winnow.models_cli import _entry, show_lineage

    if "/" in target:
        stage, key = target.split("/", 1)
    else:
        name, _, version = target.partition(":")
        entry = _entry(store, name, int(version.lstrip("v")) if version else None)
        stage, key = entry.artifact.stage, entry.artifact.key
    show_lineage(store, stage, key, png)


store_app = typer.Typer(no_args_is_help=True, help="Check and clean the artifact store.")
app.add_typer(store_app, name="store")


def _store(url: str):
    from tasks.core.store import ArtifactStore, StoreSpec

    return ArtifactStore(StoreSpec(url=url))


@store_app.command("verify")
def store_verify(
    store: str = typer.Option(os.environ.get(STORE_ENV, DEFAULT_STORE), help="store URL"),
    stage: Optional[str] = typer.Option(None, help="only this stage's artifacts"),
    quarantine: bool = typer.Option(False, help="set bad artifacts aside so the next run recomputes them"),
) -> None:
    """Re-hash every committed artifact against its manifest; exit 1 when any is bad."""
    from tasks.core.store_maintenance import verify

    findings = verify(_store(store), stage, quarantine)
    bad = [f for f in findings if f.problem]
    table = Table("stage", "key", "problem", "quarantined")
    for f in bad:
        table.add_row(f.stage, f.key[:12], f.problem, "yes" if f.quarantined else "no")
    if bad:
        console.print(table)
    console.print(f"{len(findings)} artifacts checked, {len(bad)} bad")
    raise typer.Exit(1 if bad else 0)


@store_app.command("gc")
def store_gc(
    store: str = typer.Option(os.environ.get(STORE_ENV, DEFAULT_STORE), help="store URL"),
    dry_run: bool = typer.Option(True, "--dry-run/--delete", help="list only (default), or delete"),
    grace_hours: float = typer.Option(1.0, help="keep anything written more recently (a run may be using it)"),
) -> None:
    """Remove data folders no manifest names (crashed attempts) and parts of stages that have committed."""
    from tasks.core.store_maintenance import collect_garbage

    garbage = collect_garbage(_store(store), dry_run, grace_hours * 3600)
    for path in garbage.paths:
        console.print(("would remove " if dry_run else "removed ") + path)
    console.print(f"{len(garbage.paths)} paths, {garbage.bytes / 2**20:.1f} MiB"
                  + (" (dry run: --delete to remove)" if dry_run else "") +
                  (f"; {garbage.kept_young} younger than the grace period kept" if garbage.kept_young else ""))


if __name__ == "__main__":
    app()
