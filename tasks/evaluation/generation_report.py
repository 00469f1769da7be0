"""The report of a generation run: per-model throughput, finish reasons and accuracy, as Markdown and a Prefect
table artifact."""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NONE

from tasks.core.stage_cache import StageContext, run_stage
from tasks.core.store import ArtifactRef
from tasks.core.tables import read_rows


def summarize_samples(samples: list[dict], labels: list[dict]) -> list[dict]:
    """One row per model: samples, output tokens, finish reasons, and the share of correct samples."""
    correct = {(r["model_id"], r["prompt_id"], r["sample_index"]): r["correct"] for r in labels}
    groups: dict[str, list[dict]] = defaultdict(list)
    for row in samples:
        groups[row["model_id"]].append(row)
    table = []
    for model_id, rows in sorted(groups.items()):
        hits = [correct.get((model_id, r["prompt_id"], r["sample_index"]), False) for r in rows]
        table.append({
            "model": model_id, "samples": len(rows), "output_tokens": sum(r["completion_tokens"] for r in rows),
            "mean_tokens": round(sum(r["completion_tokens"] for r in rows) / len(rows), 1),
            "stop": sum(r["finish_reason"] == "stop" for r in rows),
            "length": sum(r["finish_reason"] == "length" for r in rows),
            "error": sum(r["finish_reason"] == "error" for r in rows),
            "correct_rate": round(sum(hits) / len(rows), 4),
        })
    return table


@task(name="write_generation_report", retries=1, cache_policy=NONE)
def write_generation_report(title: str, samples: ArtifactRef, labels: ArtifactRef, ctx: StageContext
                            ) -> ArtifactRef:
    def compute(out: Path) -> dict:
        store = ctx.open_store()
        metrics = store.manifest(samples)["metrics"]
        table = summarize_samples(read_rows(store, samples, "samples"), read_rows(store, labels, "labels"))
        lines = [f"# {title}", "", f"Samples artifact `{samples.short}`: {metrics['samples']} completions of "
                 f"{metrics['prompts']} prompts, {metrics.get('wall_tokens_per_s')} output tokens/s "
                 f"(generation wall time, engine start excluded; start took {metrics.get('engine_start_s')} s).",
                 "", "| model | samples | output tokens | mean tokens | stop | length | error | correct |",
                 "|---|---|---|---|---|---|---|---|"]
        lines += [f"| {r['model']} | {r['samples']} | {r['output_tokens']} | {r['mean_tokens']} | {r['stop']} | "
                  f"{r['length']} | {r['error']} | {r['correct_rate']:.1%} |" for r in table]
        markdown = "\n".join(lines) + "\n"
        (out / "report.md").write_text(markdown)
        create_table_artifact(table, key="generation-summary", description=title)
        create_markdown_artifact(markdown, key="generation-report", description=title)
        return {"models": table}

    return run_stage(ctx, "write_generation_report", {"title": title}, {"samples": samples, "labels": labels},
                     compute)
