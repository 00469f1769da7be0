"""The one report stage of every flow: the scores it was given, then a section per stage that contributed one
(tasks/evaluation/report_sections.py), then the time of every stage — all from the run's lineage (what
`run_stage` committed or reused), as Markdown + PNG in the store and as Prefect artifacts (table + markdown)."""
from __future__ import annotations

import json
from pathlib import Path

from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NONE

from tasks.core.lineage import LineageEntry, lineage
from tasks.core.stage_cache import StageContext, run_stage
from tasks.core.store import ArtifactRef, ArtifactStore
from tasks.evaluation.headline import Headline, RankingHeadline
from tasks.evaluation.report_sections import SECTIONS, Section, table

Scores = dict[str, dict[str, ArtifactRef]]  # model (or result) name -> metric -> score artifact


def accuracy_rows(store: ArtifactStore, scores: Scores) -> list[dict]:
    """One row per score artifact: its manifest's metric, n, accuracy and 95% CI."""
    rows = []
    for model_name, metrics in scores.items():
        for ref in metrics.values():
            m = store.manifest(ref)["metrics"]
            ci = m.get("ci95") or [None, None]
            rows.append({"model": model_name, "metric": m.get("metric", ""), "n": m.get("n"),
                         "accuracy": m.get("accuracy"), "ci95_lo": ci[0], "ci95_hi": ci[1]})
    return rows


def headline_of(store: ArtifactStore, scores: Scores, headline: Headline | RankingHeadline | None) -> dict | None:
    """{"sentence", "metric", "comparisons"} for the report's first line; None when the run has none."""
    return None if headline is None else headline.describe(store, scores)


def timing_rows(store: ArtifactStore, entries: list[LineageEntry]) -> list[dict]:
    return [{"stage": e.label, "artifact": e.ref.short, "wall_s": store.manifest(e.ref)["timings"]["wall_s"]}
            for e in entries]


def stage_sections(store: ArtifactStore, entries: list[LineageEntry], out: Path) -> list[Section]:
    """The registered sections, in the order their stages first ran, each over its stages' artifacts."""
    groups: dict = {}  # section function -> its entries, in lineage order
    for e in entries:
        if e.ref.stage in SECTIONS:
            groups.setdefault(SECTIONS[e.ref.stage], []).append(e)
    return [section for fn, group in groups.items() if (section := fn(group, store, out)) is not None]


def render(title: str, accuracy: list[dict], sections: list[Section], timing: list[dict],
           headline: dict | None = None) -> str:
    lines = [f"# {title}", ""] + ([f"**{headline['sentence']}** ({headline['metric']})", ""] if headline else [])
    if accuracy:
        lines += ["## Held-out accuracy (95% Wilson interval)", ""] + table(accuracy, {
            "model": lambda r: r["model"], "metric": lambda r: r["metric"], "n": lambda r: str(r["n"]),
            "accuracy": lambda r: f"{r['accuracy']:.1%}",
            "95% CI": lambda r: f"[{r['ci95_lo']:.1%}, {r['ci95_hi']:.1%}]" if r["ci95_lo"] is not None else ""})
        lines += ["", "![accuracy](accuracy.png)", ""]
    for section in sections:
        lines += [f"## {section.title}", ""] + section.markdown + [""]
    lines += ["## Time per stage", ""] + table(timing, {
        "stage": lambda r: r["stage"], "artifact": lambda r: f"`{r['artifact']}`", "wall s": lambda r: f"{r['wall_s']:.1f}"})
    lines += ["", f"Total recorded stage time: {sum(r['wall_s'] for r in timing):.0f} s "
              "(stages reused from an earlier run show the time they took then).", ""]
    return "\n".join(lines)


def plot_accuracy(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.5))
    acc = [r["accuracy"] * 100 for r in rows]
    err = [[max(0.0, r["accuracy"] - (r["ci95_lo"] if r["ci95_lo"] is not None else r["accuracy"])) * 100
            for r in rows],
           [max(0.0, (r["ci95_hi"] if r["ci95_hi"] is not None else r["accuracy"]) - r["accuracy"]) * 100
            for r in rows]]
    # clipped at 0: a Wilson bound at 0 of 0 can come out a rounding error above it (pass@k's interval uses
    # the rounded sum, so its bounds may even sit on the other side), and matplotlib refuses negative bars
    ax.bar([f"{r['model']}\n{r['metric']}" for r in rows], acc, yerr=err, capsize=4, color="#4C72B0")
    ax.set_ylabel("held-out accuracy (%)")
    ax.set_title("accuracy with 95% CI")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


@task(name="write_report", retries=1, cache_policy=NONE)
def write_report(flow: str, title: str, scores: Scores, ctx: StageContext,
                 headline: Headline | RankingHeadline | None = None) -> ArtifactRef:
    """report.md + accuracy.png + the sections' plots + summary.json, from `scores` and the run's lineage;
    published to the Prefect UI on every run (also when the report itself is reused)."""
    store = ctx.open_store()
    entries = lineage(ctx.run_id)
    accuracy = accuracy_rows(store, scores)
    first = headline_of(store, scores, headline)

    def compute(out: Path) -> dict:
        sections = stage_sections(store, entries, out)
        timing = timing_rows(store, entries)
        (out / "report.md").write_text(render(title, accuracy, sections, timing, first))
        if accuracy:
            plot_accuracy(accuracy, out / "accuracy.png")
        summary = {"flow": flow, "headline": first, "accuracy": accuracy, "timing": timing} | {
            s.title: s.rows for s in sections}
        (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
        return {"flow": flow, "title": title, "accuracy": accuracy}

    inputs = {f"score:{m}:{k}": ref for m, d in scores.items() for k, ref in d.items()}
    inputs |= {f"stage{i}:{e.label}": e.ref for i, e in enumerate(entries)}
    config = {"flow": flow, "title": title} | (
        {"headline": {"kind": type(headline).__name__} | headline.model_dump()} if headline else {})
    ref = run_stage(ctx, "write_report", config, inputs, compute)
    markdown = (store.local_path(ref) / "report.md").read_text()
    if accuracy:
        create_table_artifact(key="accuracy", table=accuracy, description=f"{title}: held-out accuracy")
    create_markdown_artifact(key=f"{_slug(flow)}-report", markdown=markdown.replace("](", f"]({ref.uri}/"),
                             description=f"report at {ref.uri}/report.md")
    print(f"report: {ref.uri}/report.md")
    return ref


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in name.lower())
