"""`winnow models ls | show | promote | register | lineage` and `winnow lineage`: the model registry and where a
model or artifact came from (issue 18)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from flows.config import DEFAULT_STORE, STORE_ENV

models_app = typer.Typer(no_args_is_help=True, help="Named models with versions, lineage, evaluations and status.")
console = Console()
STORE = typer.Option(os.environ.get(STORE_ENV, DEFAULT_STORE), "--store", help="store URL")


def _registry(url: str):
    from tasks.core.store import ArtifactStore, StoreSpec
    from tasks.registry.registry import ModelRegistry

    return ModelRegistry(ArtifactStore(StoreSpec(url=url)))


def _entry(url: str, name: str, version: Optional[int]):
    try:
        return _registry(url).get(name, version)
    except LookupError as exc:
        console.print(f"[red]error[/]: {exc}")
        raise typer.Exit(1)


@models_app.command("ls")
def models_ls(name: Optional[str] = typer.Argument(None, help="one model's versions (default: every name)"),
              store: str = STORE) -> None:
    """Every registered name with its champion, or one name's versions."""
    registry = _registry(store)
    if name is None:
        table = Table("name", "versions", "champion", "accuracy")
        for n in registry.names():
            entries = registry.versions(n)
            champ = next((e for e in entries if e.status == "champion"), None)
            acc = champ.evaluations[-1].accuracy if champ and champ.evaluations else None
            table.add_row(n, str(len(entries)), f"v{champ.version}" if champ else "-",
                          f"{acc:.1%}" if acc is not None else "-")
    else:
        table = Table("version", "status", "parent", "artifact", "accuracy", "decision")
        for e in registry.versions(name):
            acc = e.evaluations[-1].accuracy if e.evaluations else None
            table.add_row(f"v{e.version}", e.status, f"v{e.parent}" if e.parent else "-", e.artifact.short,
                          f"{acc:.1%}" if acc is not None else "-", (e.decision or {}).get("reason", ""))
    console.print(table)


@models_app.command("show")
def models_show(name: str, version: Optional[int] = typer.Argument(None, help="default: the champion"),
                store: str = STORE) -> None:
    """One version: artifact, lineage, evaluations, gate decision and status history, as JSON."""
    console.print_json(_entry(store, name, version).model_dump_json())


@models_app.command("promote")
def models_promote(name: str, version: int, reason: str = typer.Option(..., help="why (recorded)"),
                   store: str = STORE) -> None:
    """Make a version the champion by hand (the gate is skipped; the reason is recorded)."""
    _entry(store, name, version)
    entry = _registry(store).promote(name, version, reason)
    console.print(f"{name} v{entry.version} is the champion")


@models_app.command("register")
def models_register(name: str, path: str = typer.Argument(..., help="an HF model folder (local or fsspec URL)"),
                    store: str = STORE) -> None:
    """Import a model folder into the store and register it as a candidate version of `name`."""
    from flows.base import FlowConfig
    from tasks.core.stage_cache import StageContext
    from tasks.core.store import StoreSpec
    from tasks.data.model_source import ModelConfig, import_model

    ctx = StageContext.for_run(StoreSpec(url=store), FlowConfig.model_fields["ray"].default, show_progress=False)
    ref = import_model.fn("registered", ModelConfig(path=path), ctx)
    entry = _registry(store).register(name, ref, run_id=ctx.run_id, flow="register")
    console.print(f"{name} v{entry.version} ({ref.short}): {entry.status}")


@models_app.command("lineage")
def models_lineage(name: str, version: Optional[int] = typer.Argument(None), store: str = STORE,
                   png: Optional[Path] = typer.Option(None, help="also draw the graph here")) -> None:
    """The stages, data and models behind a version (default: the champion)."""
    entry = _entry(store, name, version)
    show_lineage(store, entry.artifact.stage, entry.artifact.key, png)


def show_lineage(store: str, stage: str, key: str, png: Optional[Path]) -> None:
    from tasks.core.lineage_graph import lineage_graph, render_png, render_text
    from tasks.core.store import ArtifactStore, StoreSpec

    artifacts = ArtifactStore(StoreSpec(url=store))
    if len(key) < 64:  # a short key, as `winnow ls` prints them
        matches = [m["key"] for m in artifacts.list(stage) if m["key"].startswith(key)]
        if len(matches) != 1:
            console.print(f"[red]error[/]: {stage}/{key} matches {len(matches)} artifacts in {store}")
            raise typer.Exit(1)
        key = matches[0]
    try:
        graph = lineage_graph(artifacts, stage, key)
    except LookupError as exc:
        console.print(f"[red]error[/]: {exc}")
        raise typer.Exit(1)
    for line in render_text(graph):
        console.print(line, highlight=False, markup=False, emoji=False)
    if png is not None:
        render_png(graph, png)
        console.print(f"graph: {png}")
