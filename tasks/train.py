"""The SFT stage: (prompt, completion) datasets from the store → a model folder in the store, via Ray Train."""
from __future__ import annotations

import json
from pathlib import Path

from prefect import task
from prefect.cache_policies import NONE
from pydantic import BaseModel, ConfigDict, Field

from models.sft_train import OptimConfig
from models.tiny_llama import ModelSize
from ray_cluster.connect import ensure_ray
from ray_cluster.sft_trainer import SFTJob, TrainResources, fit_sft
from tasks.progress import progress_bar
from tasks.stage_cache import StageContext, run_stage
from tasks.store import ArtifactRef
from tasks.tables import read_rows


class SFTConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    optim: OptimConfig = OptimConfig()
    model: ModelSize = ModelSize()
    init_seed: int = Field(default=0, description="seed of the random init when training from scratch")
    resources: TrainResources = TrainResources()


class SFTSource(BaseModel):
    """One training table: the `split` table of an artifact, with `prompt` and `completion` columns."""

    ref: ArtifactRef
    split: str


@task(name="train_sft", retries=1, cache_policy=NONE, task_run_name="train_sft[{name}]")
def train_sft(
    name: str,
    sources: list[SFTSource],
    tokenizer: ArtifactRef,
    init: ArtifactRef | None,
    cfg: SFTConfig,
    ctx: StageContext,
) -> ArtifactRef:
    """Train from `init` (a model artifact) or from a fresh random init when `init` is None."""
    inputs = {f"data{i}:{s.split}": s.ref for i, s in enumerate(sources)} | {"tokenizer": tokenizer}
    if init is not None:
        inputs["init"] = init

    def compute(out: Path) -> dict:
        from transformers import AutoTokenizer

        from models.sft_data import tokenize_pair

        store = ctx.open_store()
        tok = AutoTokenizer.from_pretrained(store.local_path(tokenizer))
        rows = [row for s in sources for row in _checked_rows(read_rows(store, s.ref, s.split), s)]
        if not rows:
            raise ValueError("no usable (prompt, completion) rows in " + ", ".join(
                f"{s.ref.short}/{s.split}.parquet" for s in sources))
        examples = [tokenize_pair(tok, r["prompt"], r["completion"], cfg.optim.max_len) for r in rows]
        job = SFTJob(tokenizer=store.folder(tokenizer), init=store.folder(init) if init else None,
                     size=cfg.model, init_seed=cfg.init_seed, optim=cfg.optim, examples=examples)
        ensure_ray(ctx.ray)
        with progress_bar(f"train {name}", cfg.optim.steps, ctx.show_progress, "steps") as bar:
            metrics = fit_sft(job, cfg.resources, out, lambda step, loss: bar.set(step, info=f"loss {loss:.3f}"))
        (out / "winnow_train.json").write_text(json.dumps({"metrics": metrics, "rows": len(rows)}))
        return {**metrics, "train_rows": len(rows), "train_tokens": sum(len(e.input_ids) for e in examples)}

    return run_stage(ctx, f"train_sft", cfg, inputs, compute)


def _checked_rows(rows: list[dict], source: SFTSource) -> list[dict]:
    """Rows with usable text; a bad row is reported by position and skipped, never fatal to the run."""
    good = []
    for index, row in enumerate(rows):
        prompt, completion = row.get("prompt"), row.get("completion")
        if not isinstance(prompt, str) or not isinstance(completion, str) or not completion.strip():
            print(f"skipping row {index} of {source.ref.short}/{source.split}.parquet: "
                  f"expected non-empty string fields 'prompt' and 'completion'")
            continue
        good.append(row)
    if not good:  # e.g. a round where no sample was correct: train on the other sources
        print(f"warning: {source.ref.short}/{source.split}.parquet has no usable rows")
    return good
