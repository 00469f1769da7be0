"""The run report: Markdown + PNG plots in the store, also published as Prefect artifacts (table + markdown)."""
from __future__ import annotations

import json
from pathlib import Path

from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NONE
from pydantic import BaseModel, ConfigDict

from tasks.core.stage_cache import StageContext, run_stage
from tasks.core.store import ArtifactRef, ArtifactStore


class ReportInputs(BaseModel):
    """What a report is built from: score artifacts per model, selection artifacts, and every stage output."""

    model_config = ConfigDict(extra="forbid")
    title: str
    scores: dict[str, dict[str, ArtifactRef]]  # model name -> metric name -> score artifact
    selections: list[ArtifactRef] = []
    stages: dict[str, ArtifactRef] = {}  # label shown in the timing table -> artifact


def accuracy_rows(store: ArtifactStore, scores: dict[str, dict[str, ArtifactRef]]) -> list[dict]:
    rows = []
    for model_name, metrics in scores.items():
        for ref in metrics.values():
            m = store.manifest(ref)["metrics"]
            rows.append({"model": model_name, "metric": m["metric"], "n": m["n"], "accuracy": m["accuracy"],
                         "ci95_lo": m["ci95"][0], "ci95_hi": m["ci95"][1]})
    return rows


def timing_rows(store: ArtifactStore, stages: dict[str, ArtifactRef]) -> list[dict]:
    return [{"stage": label, "artifact": ref.short, "wall_s": store.manifest(ref)["timings"]["wall_s"]}
            for label, ref in stages.items()]


def render_markdown(title: str, accuracy: list[dict], selection: list[dict], timing: list[dict]) -> str:
    lines = [f"# {title}", "", "## Held-out accuracy (95% Wilson interval)", "",
             "| model | metric | n | accuracy | 95% CI |", "|---|---|---|---|---|"]
    lines += [f"| {r['model']} | {r['metric']} | {r['n']} | {r['accuracy']:.1%} | "
              f"[{r['ci95_lo']:.1%}, {r['ci95_hi']:.1%}] |" for r in accuracy]
    lines += ["", "![accuracy](accuracy.png)", "", "## Rejection sampling", "",
              "| round | samples | correct | selected (new distinct paths) | acceptance | new paths / problem |",
              "|---|---|---|---|---|---|"]
    lines += [f"| {i + 1} | {m['samples']} | {m['correct_rate']:.1%} | {m['selected']} | {m['acceptance_rate']:.1%} "
              f"| {m['distinct_paths_mean']:.2f} |" for i, m in enumerate(selection)]
    lines += ["", "![distinct paths per problem](paths.png)", "", "## Time per stage", "",
              "| stage | artifact | wall s |", "|---|---|---|"]
    lines += [f"| {r['stage']} | `{r['artifact']}` | {r['wall_s']:.1f} |" for r in timing]
    lines += ["", f"Total recorded stage time: {sum(r['wall_s'] for r in timing):.0f} s "
              "(stages reused from an earlier run show the time they took then).", ""]
    return "\n".join(lines)


def plot_accuracy(rows: list[dict], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.5))
    labels = [f"{r['model']}\n{r['metric']}" for r in rows]
    acc = [r["accuracy"] * 100 for r in rows]
    err = [[(r["accuracy"] - r["ci95_lo"]) * 100 for r in rows], [(r["ci95_hi"] - r["accuracy"]) * 100 for r in rows]]
    ax.bar(labels, acc, yerr=err, capsize=4, color="#4C72B0")
    ax.set_ylabel("held-out accuracy (%)")
    ax.set_title("accuracy with 95% CI")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_paths(selection: list[dict], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.5))
    for i, m in enumerate(selection):
        hist = {int(k): v for k, v in m["distinct_paths_hist"].items()}
        xs = sorted(hist)
        ax.plot(xs, [hist[x] for x in xs], marker="o", label=f"round {i + 1}")
    ax.set_xlabel("new distinct correct paths kept for a problem")
    ax.set_ylabel("problems")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


@task(name="write_report", retries=1, cache_policy=NONE)
def write_report(inputs: ReportInputs, ctx: StageContext) -> ArtifactRef:
    """report.md + accuracy.png + paths.png + summary.json; published to the Prefect UI on every run."""
    store = ctx.open_store()
    accuracy = accuracy_rows(store, inputs.scores)
    selection = [store.manifest(ref)["metrics"] for ref in inputs.selections]
    timing = timing_rows(store, inputs.stages)
    markdown = render_markdown(inputs.title, accuracy, selection, timing)

    def compute(out: Path) -> dict:
        (out / "report.md").write_text(markdown)
        plot_accuracy(accuracy, out / "accuracy.png")
        plot_paths(selection, out / "paths.png")
        summary = {"accuracy": accuracy, "selection": selection, "timing": timing}
        (out / "summary.json").write_text(json.dumps(summary, indent=2))
        return {"accuracy": accuracy}

    all_inputs = {f"score:{m}:{k}": ref for m, d in inputs.scores.items() for k, ref in d.items()}
    ref = run_stage(ctx, "write_report", inputs.title, all_inputs | {f"sel{i}": r for i, r in
                                                                    enumerate(inputs.selections)}, compute)
    create_table_artifact(key="accuracy", table=accuracy, description=f"{inputs.title}: held-out accuracy")
    create_markdown_artifact(key="rft-report", markdown=markdown.replace("](", f"]({ref.uri}/"),
                             description=f"report at {ref.uri}/report.md")
    return ref
