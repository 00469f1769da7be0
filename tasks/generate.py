"""The generation stage: prompts of one split × a model → K completions per prompt, via the engine pool on Ray."""
from __future__ import annotations

from pathlib import Path

from prefect import task
from prefect.cache_policies import NONE
from pydantic import BaseModel, ConfigDict, Field

from ray_cluster.connect import ensure_ray
from ray_cluster.engine_pool import PoolResources, run_shards
from ray_cluster.generation import CompletionRecord, EngineSpec, PromptRecord, SamplingSpec
from tasks.progress import progress_bar
from tasks.stage_cache import StageContext, run_stage
from tasks.store import ArtifactRef
from tasks.tables import read_rows, write_rows


class GenerateConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    split: str = Field(default="train", description="which table of the problems artifact to prompt with")
    limit: int | None = Field(default=None, ge=1, description="use only the first N prompts")
    sampling: SamplingSpec = SamplingSpec()
    engine: EngineSpec = EngineSpec()
    pool: PoolResources = PoolResources()
    shard_size: int = Field(default=256, ge=1, description="prompts per shard dispatched to an engine")


@task(name="sample_completions", retries=1, cache_policy=NONE, task_run_name="sample_completions[{name}]")
def sample_completions(
    name: str, problems: ArtifactRef, model: ArtifactRef, cfg: GenerateConfig, ctx: StageContext
) -> ArtifactRef:
    """samples.parquet: one row per (prompt_id, sample_index) with the completion text and token counts."""

    def compute(out: Path) -> dict:
        store = ctx.open_store()
        rows = read_rows(store, problems, cfg.split)[: cfg.limit]
        prompts = [PromptRecord(prompt_id=r["id"], text=r["prompt"]) for r in rows]
        if not prompts:
            raise ValueError(f"{problems.short}/{cfg.split}.parquet has no prompts to generate from")
        shards = {i: prompts[s: s + cfg.shard_size] for i, s in enumerate(range(0, len(prompts), cfg.shard_size))}
        results: dict[int, list[CompletionRecord]] = {}
        ensure_ray(ctx.ray)
        total = len(prompts) * cfg.sampling.n
        with progress_bar(f"generate {name}", total, ctx.show_progress, "completions") as bar:
            def keep(shard_id: int, records: list[CompletionRecord]) -> None:
                results[shard_id] = records
                bar.advance(len(records))

            run_shards(store.folder(model), model.short, cfg.engine, cfg.pool, shards, cfg.sampling, keep)
        samples = [r.model_dump() for shard_id in sorted(results) for r in results[shard_id]]
        write_rows(out / "samples.parquet", samples)
        gen_s = sum(r["gen_s"] for r in samples)
        tokens = sum(r["completion_tokens"] for r in samples)
        return {"prompts": len(prompts), "samples": len(samples), "completion_tokens": tokens,
                "tokens_per_s": round(tokens / gen_s, 1) if gen_s else None,
                "truncated": sum(r["finish_reason"] == "length" for r in samples)}

    return run_stage(ctx, "sample_completions", cfg, {"problems": problems, "model": model}, compute)
