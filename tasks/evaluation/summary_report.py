"""A short run report for the preference flows: metric tables and the training curves, as Markdown + PNG in the
store and as Prefect artifacts (table + markdown)."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NONE

from tasks.evaluation.report import timing_rows
from tasks.core.stage_cache import StageContext, run_stage
from tasks.core.store import ArtifactRef


@task(name="write_summary_report", retries=1, cache_policy=NONE)
def write_summary_report(title: str, results: dict[str, ArtifactRef], curves: dict[str, ArtifactRef],
                         stages: dict[str, ArtifactRef], ctx: StageContext) -> ArtifactRef:
    """report.md: one row per result artifact (its manifest's accuracy / n / 95% CI), the loss curve of each
    training artifact in `curves` (its loss.png), and the time per stage."""
    store = ctx.open_store()
    rows = []
    for label, ref in results.items():
        m = store.manifest(ref)["metrics"]
        rows.append({"result": label, "metric": m.get("metric", ""), "n": m.get("n"), "accuracy": m.get("accuracy"),
                     "ci95_lo": (m.get("ci95") or [None, None])[0], "ci95_hi": (m.get("ci95") or [None, None])[1]})
    timing = timing_rows(store, stages)
    lines = [f"# {title}", "", "| result | metric | n | accuracy | 95% CI |", "|---|---|---|---|---|"]
    lines += [f"| {r['result']} | {r['metric']} | {r['n']} | {r['accuracy']:.1%} | [{r['ci95_lo']:.1%}, "
              f"{r['ci95_hi']:.1%}] |" for r in rows]
    lines += ["", "## Training"] + [f"\n![{name}]({name}-loss.png)" for name in curves]
    lines += ["", "## Time per stage", "", "| stage | artifact | wall s |", "|---|---|---|"]
    lines += [f"| {r['stage']} | `{r['artifact']}` | {r['wall_s']:.1f} |" for r in timing]
    markdown = "\n".join(lines) + "\n"

    def compute(out: Path) -> dict:
        (out / "report.md").write_text(markdown)
        for name, ref in curves.items():
            shutil.copy(store.local_path(ref) / "loss.png", out / f"{name}-loss.png")
        (out / "summary.json").write_text(json.dumps({"results": rows, "timing": timing}, indent=2))
        return {"results": rows}

    ref = run_stage(ctx, "write_summary_report", title, results | {f"curve:{k}": v for k, v in curves.items()},
                    compute)
    create_table_artifact(key="results", table=rows, description=f"{title}: results")
    create_markdown_artifact(key="report", markdown=markdown.replace("](", f"]({ref.uri}/"),
                             description=f"report at {ref.uri}/report.md")
    print(f"report: {ref.uri}/report.md")
    return ref
