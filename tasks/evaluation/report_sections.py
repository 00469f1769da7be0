"""Report sections contributed per stage: each renders the artifacts its stage committed in a run (from the
run's lineage) as a table, Markdown and plots. The report stage knows no stage by name; a stage that wants a
section in every flow's report registers one here (one function + its registration)."""
from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from models.registry import Registry
from tasks.core.lineage import LineageEntry
from tasks.core.store import ArtifactStore


@dataclass
class Section:
    title: str
    rows: list[dict]  # also written to summary.json
    markdown: list[str] = field(default_factory=list)


SectionFn = Callable[[list[LineageEntry], ArtifactStore, Path], Section | None]
SECTIONS = Registry("report section")


def register_section(*stages: str):
    def wrap(fn: SectionFn) -> SectionFn:
        for stage in stages:
            SECTIONS[stage] = fn
        return fn
    return wrap


def table(rows: list[dict], columns: dict[str, Callable[[dict], str]]) -> list[str]:
    """A Markdown table: header from `columns`' names, cells from their formatters."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    return lines + ["| " + " | ".join(fmt(r) for fmt in columns.values()) + " |" for r in rows]


def _plot(path: Path, draw: Callable) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.5))
    draw(ax)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


@register_section("select_samples")
def rejection_sampling(entries: list[LineageEntry], store: ArtifactStore, out: Path) -> Section:
    """RFT (Yuan et al. 2023): how many samples each round kept, and how many new distinct paths per problem."""
    rows = [store.manifest(e.ref)["metrics"] | {"round": i + 1} for i, e in enumerate(entries)]

    def draw(ax) -> None:
        for m in rows:
            hist = {int(k): v for k, v in m["distinct_paths_hist"].items()}
            ax.plot(sorted(hist), [hist[x] for x in sorted(hist)], marker="o", label=f"round {m['round']}")
        ax.set_xlabel("new distinct correct paths kept for a problem")
        ax.set_ylabel("problems")
        ax.legend()

    _plot(out / "paths.png", draw)
    markdown = table(rows, {
        "round": lambda m: str(m["round"]), "samples": lambda m: str(m["samples"]),
        "correct": lambda m: f"{m['correct_rate']:.1%}", "selected (new distinct paths)": lambda m: str(m["selected"]),
        "acceptance": lambda m: f"{m['acceptance_rate']:.1%}",
        "new paths / problem": lambda m: f"{m['distinct_paths_mean']:.2f}"})
    return Section("Rejection sampling", rows, markdown + ["", "![distinct paths per problem](paths.png)"])


@register_section("train_sft", "train_reward_model", "train_dpo", "train_rrtf", "train_prm")
def training(entries: list[LineageEntry], store: ArtifactStore, out: Path) -> Section:
    """Every model trained in the run: its loss from first step to last, throughput, and its loss curve."""
    rows, images = [], []
    for e in entries:
        m = store.manifest(e.ref)["metrics"]
        name = m.get("model_name") or e.label
        image = f"{_slug(e.label)}-loss.png"
        source = store.local_path(e.ref) / "loss.png"
        if source.exists():
            shutil.copy(source, out / image)
            images.append(f"![{e.label}]({image})")
        rows.append({"stage": e.label, "model": name, "steps": m.get("steps"), "first_loss": m.get("first_loss"),
                     "final_loss": m.get("final_loss"), "tokens_per_s": m.get("tokens_per_s"),
                     "train_rows": m.get("train_rows"), "accuracy": m.get("accuracy")})
    markdown = table(rows, {
        "stage": lambda r: r["stage"], "steps": lambda r: str(r["steps"]),
        "first loss": lambda r: _num(r["first_loss"]), "final loss": lambda r: _num(r["final_loss"]),
        "train rows": lambda r: str(r["train_rows"]), "tokens/s": lambda r: _num(r["tokens_per_s"], ".0f")})
    return Section("Training", rows, markdown + [""] + images)


@register_section("train_online")
def online_rl(entries: list[LineageEntry], store: ArtifactStore, out: Path) -> Section:
    """Online RL (issue 16): reward and held-out accuracy per iteration, and what the weight sync cost."""
    rows, images = [], []
    for e in entries:
        m = store.manifest(e.ref)["metrics"]
        image = f"{_slug(e.label)}-curves.png"
        shutil.copy(store.local_path(e.ref) / "curves.png", out / image)
        images.append(f"![{e.label}]({image})")
        rows.append({"stage": e.label} | {k: m.get(k) for k in (
            "iterations", "samples", "first_reward", "final_reward", "heldout_curve", "sync_s", "logprob_diff",
            "resumed_from_iteration")})
    markdown = table(rows, {
        "stage": lambda r: r["stage"], "iterations": lambda r: str(r["iterations"]),
        "samples": lambda r: str(r["samples"]), "reward first → last": lambda r:
        f"{r['first_reward']:.3f} → {r['final_reward']:.3f}", "held-out greedy (curve)": lambda r:
        " → ".join(f"{a:.1%}" for a in r["heldout_curve"] or []), "weight sync (s)": lambda r: _num(r["sync_s"], ".3f"),
        "sampler − trainer log-prob": lambda r: _num(r["logprob_diff"], ".2e")})
    return Section("Online RL", rows, markdown + [""] + images)


@register_section("sample_completions")
def generation(entries: list[LineageEntry], store: ArtifactStore, out: Path) -> Section:
    """What each generation produced and how fast (engine start excluded from tokens/s)."""
    rows = [{"stage": e.label} | {k: m.get(k) for k in ("prompts", "samples", "completion_tokens", "truncated",
                                                        "errors", "wall_tokens_per_s", "engine_start_s")}
            for e in entries for m in [store.manifest(e.ref)["metrics"]]]
    return Section("Generation", rows, table(rows, {
        "stage": lambda r: r["stage"], "prompts": lambda r: str(r["prompts"]), "samples": lambda r: str(r["samples"]),
        "output tokens": lambda r: str(r["completion_tokens"]), "truncated": lambda r: str(r["truncated"]),
        "errors": lambda r: str(r["errors"]), "tokens/s": lambda r: _num(r["wall_tokens_per_s"], ".0f")}))


@register_section("label_rewards")
def labels(entries: list[LineageEntry], store: ArtifactStore, out: Path) -> Section:
    rows = [{"stage": e.label} | {k: m.get(k) for k in ("rows", "correct", "accuracy", "errors", "mean_reward")}
            for e in entries for m in [store.manifest(e.ref)["metrics"]]]
    return Section("Labels", rows, table(rows, {
        "stage": lambda r: r["stage"], "samples": lambda r: str(r["rows"]), "correct": lambda r: str(r["correct"]),
        "share correct": lambda r: f"{r['accuracy']:.1%}", "errors": lambda r: str(r["errors"]),
        "mean reward": lambda r: _num(r["mean_reward"])}))


@register_section("make_preferences")
def preferences(entries: list[LineageEntry], store: ArtifactStore, out: Path) -> Section:
    rows = [{"stage": e.label} | store.manifest(e.ref)["metrics"] for e in entries]
    columns = {"stage": lambda r: r["stage"], "prompts": lambda r: str(r.get("prompts"))}
    columns |= {name: (lambda r, n=name: str(r.get(n))) for name in ("pairs_train", "pairs_test", "groups_train",
                                                                      "groups_test")}
    return Section("Preference data", rows, table(rows, columns))


@register_section("score_accuracy")
def breakdowns(entries: list[LineageEntry], store: ArtifactStore, out: Path) -> Section | None:
    """Scores per group of problems (MATH: level, subject) for every score that was broken down."""
    rows = [{"score": e.label, "field": key.removeprefix("by_"), "group": group, "n": s["n"],
             "accuracy": s["accuracy"]}
            for e in entries for key, groups in store.manifest(e.ref)["metrics"].items() if key.startswith("by_")
            for group, s in groups.items()]
    if not rows:  # no score was broken down: no section
        return None
    return Section("Scores by group", rows, table(rows, {
        "score": lambda r: r["score"], "field": lambda r: r["field"], "group": lambda r: str(r["group"]),
        "n": lambda r: str(r["n"]), "accuracy": lambda r: f"{r['accuracy']:.1%}"}))


@register_section("rerank")
def reranking(entries: list[LineageEntry], store: ArtifactStore, out: Path) -> Section:
    """Best-of-N on held-out problems: the reward model's pick vs the majority answer vs any correct (pass@N)."""
    rows = [{"rerank": e.label} | c for e in entries for c in store.manifest(e.ref)["metrics"]["curves"]]

    def draw(ax) -> None:
        for way, label in (("rm", "best by reward model"), ("maj", "majority vote"), ("oracle", "any correct")):
            ax.plot([r["n"] for r in rows], [100 * r[way] for r in rows], marker="o", label=label)
        ax.set_xscale("log", base=2)
        ax.set_xlabel("N samples per problem")
        ax.set_ylabel("held-out accuracy (%)")
        ax.legend()

    _plot(out / "best_of_n.png", draw)
    pct = lambda way: lambda r: f"{r[way]:.1%} [{r[way + '_ci95'][0]:.1%}, {r[way + '_ci95'][1]:.1%}]"  # noqa: E731
    return Section("Best of N", rows, table(rows, {
        "N": lambda r: str(r["n"]), "problems": lambda r: str(r["problems"]), "reward model's pick": pct("rm"),
        "majority": pct("maj"), "any correct (pass@N)": pct("oracle")}) + ["", "![best of N](best_of_n.png)"])


@register_section("load_dataset")
def datasets(entries: list[LineageEntry], store: ArtifactStore, out: Path) -> Section:
    """Every imported dataset: its rows, and the rows skipped as bad (never silently dropped)."""
    rows = [{"dataset": e.label} | {k: m.get(k) for k in ("train_rows", "test_rows", "skipped_rows",
                                                          "train_dropped_overlap", "skipped")}
            for e in entries for m in [store.manifest(e.ref)["metrics"]]]
    return Section("Datasets", rows, table(rows, {
        "dataset": lambda r: r["dataset"], "train": lambda r: str(r["train_rows"]), "test": lambda r: str(r["test_rows"]),
        "skipped (bad rows)": lambda r: str(r["skipped_rows"]) + "".join(
            f"; {why}: {n}" for why, n in sorted((r["skipped"] or {}).items())),
        "train rows also in test (dropped)": lambda r: str(r["train_dropped_overlap"])}))


def _num(value, spec: str = ".4f") -> str:
    return "" if value is None else format(value, spec)


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in name.lower()).strip("-")
