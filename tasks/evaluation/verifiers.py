"""Best-of-N by verifiers ("Let's Verify Step by Step", Lightman et al. 2023): on the same K samples per
held-out problem, the accuracy of picking by a process reward model (steps scored, then aggregated), by an
outcome reward model (read at EOS), and by majority vote, for N = 1, 2, 4, …; any-correct (pass@N) bounds them.
A report section plots the curves."""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from prefect import task
from prefect.cache_policies import NONE
from pydantic import Field

from models.process_reward import STEP_AGGREGATES
from ray_cluster.connect import ensure_ray
from ray_cluster.reward_scorer import ScoreRequest, StepScoreRequest, score_on_ray
from tasks.core.lineage import LineageEntry
from tasks.core.stage_cache import StageContext, run_stage
from tasks.core.store import ArtifactRef, ArtifactStore
from tasks.core.tables import write_rows
from tasks.evaluation.report_sections import Section, _plot, register_section, table
from tasks.evaluation.rerank import RerankConfig, curves, labelled_prompts
from tasks.labelling.steps import StepSplitConfig, split_steps

WAYS = {"prm": "prm_score", "orm": "orm_score"}  # way → the sample field it picks by


class VerifierRerankConfig(RerankConfig):
    ns: list[int] = Field(default=[1, 2, 4, 8, 16])
    steps: StepSplitConfig = StepSplitConfig()
    aggregate: str = Field(default="min", description=f"PRM step scores → one score: {sorted(STEP_AGGREGATES)}")


def _scores(store: ArtifactStore, model: ArtifactRef, requests: list, cfg: VerifierRerankConfig, method: str):
    return score_on_ray(store.folder(model), requests, batch_size=cfg.batch_size, max_len=cfg.max_len,
                        num_scorers=cfg.num_scorers, cpus_per_scorer=cfg.cpus_per_scorer, use_gpu=cfg.use_gpu,
                        method=method)


@task(name="rerank_verifiers", retries=1, cache_policy=NONE, task_run_name="rerank_verifiers[{name}]")
def rerank_verifiers(name: str, labels: ArtifactRef, problems: ArtifactRef, prm: ArtifactRef, orm: ArtifactRef,
                     cfg: VerifierRerankConfig, ctx: StageContext) -> ArtifactRef:
    """Every labelled sample scored by the PRM and the ORM, then the best-of-N curves of both, majority vote and
    any-correct; the manifest's accuracy is the PRM's pick at the largest N."""

    def compute(out: Path) -> dict:
        store = ctx.open_store()
        prompts, rows = labelled_prompts(store, labels, problems, cfg.split)
        texts = [r.get("text") or "" for r in rows]
        ensure_ray(ctx.ray)
        orm_scores = {s.row_index: s.reward for s in _scores(store, orm, [
            ScoreRequest(i, prompts[r["prompt_id"]] + t) for i, (r, t) in enumerate(zip(rows, texts))], cfg, "score")}
        aggregate = STEP_AGGREGATES[cfg.aggregate]
        step_scores = {s.row_index: list(s.step_scores) for s in _scores(store, prm, [
            StepScoreRequest(i, prompts[r["prompt_id"]], tuple(split_steps(t, cfg.steps) or [t]))
            for i, (r, t) in enumerate(zip(rows, texts))], cfg, "score_steps")}
        by_prompt: dict[str, list[dict]] = defaultdict(list)
        for i, r in enumerate(rows):
            by_prompt[r["prompt_id"]].append({
                "sample_index": r["sample_index"], "correct": bool(r["correct"]), "pred": r.get("pred"),
                "orm_score": orm_scores[i], "step_scores": step_scores[i],
                # a sample with no step inside max_len is the PRM's last choice, never its pick
                "prm_score": aggregate(step_scores[i]) if step_scores[i] else float("-inf")})
        table_rows = curves(by_prompt, cfg.ns, WAYS)
        write_rows(out / "curves.parquet", table_rows)
        write_rows(out / "scored.parquet", [{"prompt_id": p, **s} for p, group in by_prompt.items() for s in group])
        last = table_rows[-1]
        return {"metric": f"best-of-{last['n']} (PRM)", "n": last["problems"], "accuracy": last["prm"],
                "correct": round(last["prm"] * last["problems"]), "ci95": last["prm_ci95"], "curves": table_rows}

    return run_stage(ctx, "rerank_verifiers", cfg, {"labels": labels, "problems": problems, "prm": prm, "orm": orm},
                     compute)


_LABELS = {"prm": "best by PRM", "orm": "best by outcome RM", "maj": "majority vote", "oracle": "any correct"}


@register_section("rerank_verifiers")
def verifier_curves(entries: list[LineageEntry], store: ArtifactStore, out: Path) -> Section:
    """Best-of-N by PRM vs outcome RM vs majority vote (and any correct), with 95% intervals."""
    rows = [{"rerank": e.label} | c for e in entries for c in store.manifest(e.ref)["metrics"]["curves"]]

    def draw(ax) -> None:
        for way, label in _LABELS.items():
            ax.errorbar([r["n"] for r in rows], [100 * r[way] for r in rows], marker="o", capsize=3, label=label,
                        yerr=[[100 * (r[way] - r[f"{way}_ci95"][0]) for r in rows],
                              [100 * (r[f"{way}_ci95"][1] - r[way]) for r in rows]])
        ax.set_xscale("log", base=2)
        ax.set_xlabel("N samples per problem")
        ax.set_ylabel("held-out accuracy (%)")
        ax.legend()

    _plot(out / "verifiers.png", draw)
    pct = lambda way: lambda r: f"{r[way]:.1%} [{r[way + '_ci95'][0]:.1%}, {r[way + '_ci95'][1]:.1%}]"  # noqa: E731
    return Section("Best of N by verifiers", rows, table(rows, {
        "N": lambda r: str(r["n"]), "problems": lambda r: str(r["problems"]), **{
            label: pct(way) for way, label in _LABELS.items()}}) + ["", "![best of N by verifiers](verifiers.png)"])


@register_section("process_labels")
def step_labels(entries: list[LineageEntry], store: ArtifactStore, out: Path) -> Section:
    """Math-Shepherd's automatic labels: how many solutions and steps, and how many steps a completion rescued."""
    rows = [{"stage": e.label} | store.manifest(e.ref)["metrics"] for e in entries]
    return Section("Process labels (Math-Shepherd)", rows, table(rows, {
        "stage": lambda r: r["stage"], "solutions": lambda r: str(r["solutions"]),
        "train / held out": lambda r: f"{r['train']} / {r['test']}", "steps": lambda r: str(r["steps"]),
        "steps labelled good (hard)": lambda r: f"{r['hard_positive']:.1%}",
        "mean soft label": lambda r: f"{r['soft_mean']:.3f}"}))
