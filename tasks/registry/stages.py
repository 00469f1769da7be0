"""The registry's stages in a flow (issue 18): start from the champion, gate a candidate against it, plot the
champion's accuracy across rounds and runs. The gate is a cached stage keyed by both models and their scores, so
a rerun reuses its decision instead of deciding (and promoting) twice."""
from __future__ import annotations

import json
from pathlib import Path

from prefect import task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NONE
from pydantic import BaseModel, ConfigDict, Field

from tasks.core.stage_cache import StageContext, run_stage
from tasks.core.store import ArtifactRef, ArtifactStore
from tasks.core.tables import write_rows
from tasks.evaluation.headline import per_problem_scores
from tasks.registry.gate import GateConfig, decide
from tasks.registry.registry import Evaluation, ModelEntry, ModelRegistry


class RegistryConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(default="tiny-arith-policy", pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$",
                      description="the registered model's name: rounds and scheduled runs improve its champion")
    gate: GateConfig = GateConfig()


class Contender(BaseModel):
    """A model with its held-out score artifact (per-problem results) on the flow's problems."""

    model_config = ConfigDict(frozen=True)
    model: ArtifactRef
    score: ArtifactRef
    version: int | None = None  # its registry version, once registered


def evaluation_of(store: ArtifactStore, score: ArtifactRef, problems: ArtifactRef) -> Evaluation:
    m = store.manifest(score)["metrics"]
    return Evaluation(metric=m["metric"], accuracy=m["accuracy"], n=m["n"], ci95=m["ci95"], problems=problems.short,
                      score=score)


@task(name="champion", cache_policy=NONE, task_run_name="champion[{cfg.name}]")
def current_champion(cfg: RegistryConfig, fallback: Contender, tokenizer: ArtifactRef, problems: ArtifactRef,
                     ctx: StageContext, flow: str) -> ModelEntry:
    """The registry's champion of `cfg.name`; when the name has none yet, `fallback` (the flow's starting model)
    is registered and becomes it. A champion made with another tokenizer cannot be trained on here: refused."""
    store = ctx.open_store()
    registry = ModelRegistry(store)
    champion = registry.champion(cfg.name)
    if champion is None:
        entry = registry.register(cfg.name, fallback.model, run_id=ctx.run_id, flow=flow)
        registry.add_evaluation(cfg.name, entry.version, evaluation_of(store, fallback.score, problems))
        return registry.decide(cfg.name, entry.version, True, decide({}, None, cfg.gate), ctx.run_id)
    used = store.manifest(champion.artifact).get("inputs", {}).get("tokenizer")
    if champion.artifact != tokenizer and (used is None or used["key"] != tokenizer.key):
        raise ValueError(f"registry {cfg.name!r}: champion v{champion.version} ({champion.artifact.short}) was made "
                         f"with another tokenizer than this run's ({tokenizer.short}); use another registry.name or "
                         "the champion's data and tokenizer config")
    return champion


@task(name="candidates_tried", cache_policy=NONE, task_run_name="candidates_tried[{cfg.name}]")
def candidates_tried(cfg: RegistryConfig, champion: ModelEntry, ctx: StageContext) -> int:
    """How many candidates were already trained from this champion (and gated): the next attempt's number, so a
    scheduled run after a rejection tries a new candidate instead of reproducing the rejected one."""
    return sum(e.parent == champion.version for e in ModelRegistry(ctx.open_store()).versions(cfg.name))


@task(name="promotion_gate", cache_policy=NONE, task_run_name="promotion_gate[{name}]")
def promotion_gate(name: str, candidate: Contender, champion: Contender, problems: ArtifactRef, cfg: RegistryConfig,
                   ctx: StageContext, flow: str) -> ModelEntry:
    """Register `candidate` as a version of `cfg.name`, pair its per-problem scores with the champion's on the
    same problems, and promote it or record it as rejected with the reason; returns the champion after."""
    store = ctx.open_store()
    registry = ModelRegistry(store)

    def compute(out: Path) -> dict:
        verdict = decide(per_problem_scores(store, candidate.score), per_problem_scores(store, champion.score),
                         cfg.gate)
        entry = registry.register(cfg.name, candidate.model, run_id=ctx.run_id, flow=flow, parent=champion.version)
        registry.add_evaluation(cfg.name, entry.version, evaluation_of(store, candidate.score, problems))
        entry = registry.decide(cfg.name, entry.version, verdict["promote"], verdict, ctx.run_id)
        m = store.manifest(candidate.score)["metrics"]
        c = store.manifest(champion.score)["metrics"]
        row = verdict | {"name": cfg.name, "candidate": entry.version, "champion": champion.version,
                         "candidate_acc": m["accuracy"], "champion_acc": c["accuracy"], "status": entry.status}
        (out / "decision.json").write_text(json.dumps(row, indent=2))
        return row

    ref = run_stage(ctx, "promotion_gate", cfg, {"candidate": candidate.model, "candidate_score": candidate.score,
                                                 "champion": champion.model, "champion_score": champion.score}, compute)
    decision = store.manifest(ref)["metrics"]
    print(f"gate {name}: v{decision['candidate']} {'promoted' if decision['promote'] else 'rejected'}: "
          f"{decision['reason']}")
    return registry.champion(cfg.name)


@task(name="champion_trend", cache_policy=NONE, task_run_name="champion_trend[{cfg.name}]")
def champion_trend(cfg: RegistryConfig, problems: ArtifactRef, ctx: StageContext) -> ArtifactRef:
    """The champion's held-out accuracy each time one was crowned (across rounds and runs), and every version's
    status: trend.png + versions.parquet, and a Prefect table. Keyed by the registry's state, so it is redrawn
    whenever the registry changed."""
    store = ctx.open_store()
    versions = ModelRegistry(store).versions(cfg.name)
    rows = [_version_row(e, problems) for e in versions]

    def compute(out: Path) -> dict:
        crowned = sorted(((h["at"], e) for e in versions for h in e.history if h["status"] == "champion"),
                         key=lambda pair: (pair[0], pair[1].version))
        trend = [{"order": i + 1, "version": e.version, "accuracy": _accuracy(e, problems)}
                 for i, (_, e) in enumerate(crowned)]
        write_rows(out / "versions.parquet", rows)
        _plot_trend(trend, out / "trend.png", cfg.name)
        return {"name": cfg.name, "trend": trend, "versions": len(rows)}

    ref = run_stage(ctx, "champion_trend", {"name": cfg.name, "state": rows}, {"problems": problems}, compute)
    create_table_artifact(key=f"registry-{cfg.name.lower().replace('.', '-').replace('_', '-')}", table=rows,
                          description=f"model registry: every version of {cfg.name}")
    return ref


def _accuracy(entry: ModelEntry, problems: ArtifactRef) -> float | None:
    return next((e.accuracy for e in entry.evaluations if e.problems == problems.short), None)


def _version_row(entry: ModelEntry, problems: ArtifactRef) -> dict:
    d = entry.decision or {}
    return {"version": entry.version, "status": entry.status, "parent": entry.parent,
            "artifact": entry.artifact.short, "accuracy": _accuracy(entry, problems), "diff": d.get("diff"),
            "p_value": d.get("p_value"), "reason": d.get("reason", ""), "run_id": entry.run_id}


def _plot_trend(trend: list[dict], path: Path, name: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.2))
    points = [(t["order"], 100 * t["accuracy"]) for t in trend if t["accuracy"] is not None]
    if points:
        ax.plot(*zip(*points), marker="o")
        for t in trend:
            if t["accuracy"] is not None:
                ax.annotate(f"v{t['version']}", (t["order"], 100 * t["accuracy"]), textcoords="offset points",
                            xytext=(0, 6), ha="center")
    ax.set_xlabel("champion (in the order crowned)"), ax.set_ylabel("held-out accuracy (%)")
    ax.set_title(f"{name}: champion accuracy")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
