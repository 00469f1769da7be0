"""The generation stage: prompts of one split × one or more models → K completions per prompt, via engine pools on Ray.

Prompts are cut into shards; each finished shard is saved to the store at once (a stage part), so a rerun after a
crash (driver killed, engine lost) generates only the shards that are missing. Several models pool their samples
in one artifact (RFT-U in Yuan et al. 2023), each row naming the model that wrote it.
"""
from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path

from prefect import task
from prefect.cache_policies import NONE
from pydantic import BaseModel, ConfigDict, Field, model_validator

from models.sft_data import prompt_format
from ray_cluster.connect import ensure_ray
from ray_cluster.engine_pool import PoolResources, run_shards
from ray_cluster.generation import CompletionRecord, EngineSpec, PromptRecord, SamplingSpec
from ray_cluster.model_inputs import check_causal_lm, read_model_config
from tasks.core.progress import progress_bar
from tasks.core.records import SAMPLES
from tasks.core.stage_cache import StageContext, StageParts, run_stage
from tasks.core.store import ArtifactRef, ArtifactStore
from tasks.core.tables import read_rows, write_records


class GenerateConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    split: str = Field(default="train", description="which table of the problems artifact to prompt with")
    limit: int | None = Field(default=None, ge=1, description="use only the first N prompts")
    sampling: SamplingSpec = SamplingSpec()
    engine: EngineSpec = EngineSpec()
    pool: PoolResources = PoolResources()
    shard_size: int = Field(default=256, ge=1, description="prompts per shard dispatched to an engine")

    @model_validator(mode="after")
    def _tp_fits_gpus(self) -> "GenerateConfig":
        tp = self.engine.tensor_parallel_size
        if tp > 1 and self.pool.gpus_per_engine < tp:
            raise ValueError(f"engine.tensor_parallel_size={tp} needs pool.gpus_per_engine >= {tp} "
                             f"(got {self.pool.gpus_per_engine})")
        return self


# Fixed column types (declared once, from CompletionRecord, in tasks/core/records.py): a shard whose rows all
# lack logprobs must still concatenate with one that has them.
SAMPLES_SCHEMA = SAMPLES.arrow()


def _part_name(model_name: str, shard_id: int) -> str:
    return f"{re.sub(r'[^A-Za-z0-9_.-]', '_', model_name)}--{shard_id:05d}.parquet"


def first_texts(store: ArtifactStore, samples: ArtifactRef) -> dict[str, str | None]:
    """Prompt id → the text of its first sample (sample_index 0): what a teacher asked once per prompt answered."""
    return {s["prompt_id"]: s["text"] for s in read_rows(store, samples, "samples") if s["sample_index"] == 0}


def check_models(store: ArtifactStore, models: dict[str, ArtifactRef]) -> None:
    """Every model is a causal LM folder: checked from config.json before any engine starts."""
    if not models:
        raise ValueError("sample_completions: no models given")
    for name, ref in models.items():
        folder = store.folder(ref).uri
        fs, path = store.fs, folder.split("://", 1)[-1]
        check_causal_lm(read_model_config(fs, path), f"model {name!r} ({folder})")


def load_prompts(store: ArtifactStore, problems: ArtifactRef, cfg: GenerateConfig) -> list[PromptRecord]:
    rows = read_rows(store, problems, cfg.split)[: cfg.limit]
    prompts = []
    for i, row in enumerate(rows):
        if not isinstance(row.get("id"), str) or not isinstance(row.get("prompt"), str):
            raise ValueError(f"{problems.short}/{cfg.split}.parquet row {i}: expected string fields 'id' and "
                             f"'prompt', got id={row.get('id')!r}, prompt={str(row.get('prompt'))[:40]!r}")
        prompts.append(PromptRecord(prompt_id=row["id"], text=row["prompt"], **prompt_format(row)))
    if not prompts:
        raise ValueError(f"{problems.short}/{cfg.split}.parquet has no prompts to generate from")
    return prompts


@task(name="sample_completions", retries=1, cache_policy=NONE, task_run_name="sample_completions[{name}]")
def sample_completions(
    name: str, problems: ArtifactRef, models: dict[str, ArtifactRef], cfg: GenerateConfig, ctx: StageContext
) -> ArtifactRef:
    """samples.parquet: one row per (model_id, prompt_id, sample_index) with the text, token counts, finish
    reason and timing; `model_id` is the name the model has in `models`."""

    def compute(out: Path, parts: StageParts) -> dict:
        store = ctx.open_store()
        prompts = load_prompts(store, problems, cfg)
        check_models(store, models)
        shards = {i: prompts[s: s + cfg.shard_size] for i, s in enumerate(range(0, len(prompts), cfg.shard_size))}
        finished = parts.finished()
        todo = {m: {i: shard for i, shard in shards.items() if _part_name(m, i) not in finished} for m in models}
        resumed = len(models) * len(shards) - sum(len(t) for t in todo.values())
        done_prompts = sum(len(shards[i]) for m in models for i in shards if i not in todo[m])
        scratch = Path(tempfile.mkdtemp(prefix="winnow-shards-"))
        try:
            total = len(models) * len(prompts) * cfg.sampling.n
            timings = {"engine_start_s": 0.0, "generate_wall_s": 0.0}
            with progress_bar(f"generate {name}", total, ctx.show_progress, "completions") as bar:
                bar.advance(done_prompts * cfg.sampling.n)
                for model_name, model_todo in todo.items():
                    if not model_todo:
                        continue
                    ensure_ray(ctx.ray)

                    def persist(shard_id: int, records: list[CompletionRecord], model_name: str = model_name) -> None:
                        local = scratch / _part_name(model_name, shard_id)
                        write_records(local, [r.model_dump() for r in records], SAMPLES)
                        parts.put(local.name, local)  # saved before the next shard starts: survives a crash
                        bar.advance(len(records))

                    spent = run_shards(store.folder(models[model_name]), model_name, cfg.engine, cfg.pool,
                                       model_todo, cfg.sampling, persist)
                    timings = {k: timings[k] + spent[k] for k in timings}
            samples = _gather(parts, [_part_name(m, i) for m in models for i in sorted(shards)], scratch)
            write_records(out / "samples.parquet", samples, SAMPLES)
            return _metrics(samples, len(prompts), len(models) * len(shards), resumed) | timings | {
                "wall_tokens_per_s": _rate(samples, shards, todo, models, timings["generate_wall_s"])}
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

    inputs = {"problems": problems, **{f"model:{m}": ref for m, ref in models.items()}}
    return run_stage(ctx, "sample_completions", cfg, inputs, compute, resumable=True)


def _gather(parts: StageParts, names: list[str], scratch: Path) -> list[dict]:
    """All shards, in (model, shard) order, read back from the store: one row per (model, prompt, sample)."""
    import pyarrow.parquet as pq

    finished = parts.finished()
    missing = [n for n in names if n not in finished]
    if missing:
        raise RuntimeError(f"shards not in the store after generation: {missing[:5]}")
    rows: list[dict] = []
    for part in names:
        local = scratch / f"read-{part}"
        rows += pq.read_table(parts.fetch(finished[part], local)).to_pylist()
    return rows


def _rate(samples: list[dict], shards: dict, todo: dict, models: dict, wall_s: float) -> float | None:
    """Output tokens per second of generation wall time (engines running, results persisted), counting only
    the shards generated in this attempt."""
    fresh = {(m, p.prompt_id) for m in models for i in todo[m] for p in shards[i]}
    tokens = sum(r["completion_tokens"] for r in samples if (r["model_id"], r["prompt_id"]) in fresh)
    return round(tokens / wall_s, 1) if wall_s else None


def _metrics(samples: list[dict], n_prompts: int, n_shards: int, resumed: int) -> dict:
    gen_s = sum(r["gen_s"] for r in samples)
    tokens = sum(r["completion_tokens"] for r in samples)
    per_model: dict[str, int] = {}
    for r in samples:
        per_model[r["model_id"]] = per_model.get(r["model_id"], 0) + 1
    return {"prompts": n_prompts, "samples": len(samples), "samples_per_model": per_model,
            # per engine: tokens over the time spent inside engine.generate (wall_tokens_per_s is the stage's)
            "completion_tokens": tokens, "engine_tokens_per_s": round(tokens / gen_s, 1) if gen_s else None,
            "truncated": sum(r["finish_reason"] == "length" for r in samples),
            "errors": sum(r["finish_reason"] == "error" for r in samples),
            "shards": n_shards, "shards_resumed": resumed, "shards_generated": n_shards - resumed}
