"""Training stages: datasets in the store → a model folder in the store, through Ray Train, for every method.

    train_sft            (prompt, completion) tables → causal LM             (RFT, the SFT base)
    train_reward_model   ranked response groups      → reward model (EOS)    (InstructGPT)
    train_dpo            preference pairs + cached reference log-probs → LM  (DPO)
    train_rrtf           scored response groups      → LM                    (PanGu-Coder2)

Each stage trains one method of the registry (models/methods/): the entry names the tables the stage reads,
builds the data from their rows, and brings its own config class, which the stage takes as `cfg`:
`SFTConfig`, `RewardModelTrainConfig`, `DPOTrainConfig`, `RRTFTrainConfig` (all `TrainConfig`s, exported here).

Checkpoints go to the stage's place in the store while it runs; rerunning a stage that died continues from the
newest complete one at its exact data position (ray_cluster/checkpoints.py). The committed artifact is the
final HF folder plus `metrics.parquet` (loss, lr, grad norm, tokens/s per step) and `loss.png`.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Callable

from prefect import task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NONE
from pydantic import BaseModel

from models.methods import (DPOTrainConfig, EmptyTable, LoraOptions, MethodData, MethodEntry,  # noqa: F401 (exported)
                            RewardModelTrainConfig, RRTFTrainConfig, SFTConfig, TrainConfig, TrainResources, get_method)
from models.methods.base import Rows
from ray_cluster.checkpoints import CheckpointPlace, complete_steps, fetch_model
from ray_cluster.connect import ensure_ray
from ray_cluster.trainer import TrainJob, fit
from tasks.core.progress import progress_bar
from tasks.core.stage_cache import StageContext, StageParts, run_stage
from tasks.core.store import ArtifactRef, ArtifactStore
from tasks.core.tracking import log_history
from tasks.core.tables import read_rows, write_rows
from tasks.training.train_checks import check_lora_targets, plot_loss


class SFTSource(BaseModel):
    """One training table: the `split` table of an artifact, with `prompt` and `completion` columns."""

    ref: ArtifactRef
    split: str


def fit_stage(name: str, stage: str, method: MethodEntry | str, inputs: dict[str, ArtifactRef],
              tokenizer: ArtifactRef, init: ArtifactRef | None, cfg: TrainConfig, ctx: StageContext,
              read: Callable[[ArtifactStore], Rows] | None = None) -> ArtifactRef:
    """The common body of every training stage. The method's registry entry names the tables it reads from
    `inputs` and builds its data from their rows; `read(store)` replaces that for a stage that gathers its rows
    itself (SFT: its list of sources)."""
    entry = get_method(method) if isinstance(method, str) else method
    if not isinstance(cfg, entry.config):  # a config of another method would train with the wrong fields
        raise TypeError(f"{stage}: cfg is a {type(cfg).__name__}; method {entry.name!r} takes a "
                        f"{entry.config.__name__}")
    store = ctx.open_store()

    def compute(out: Path, parts: StageParts) -> dict:
        from transformers import AutoTokenizer

        if cfg.lora is not None:  # before any worker starts; skipped when the stage is reused
            check_lora_targets(cfg.lora, store.local_path(init) if init else None, cfg.model, entry)
        tok = AutoTokenizer.from_pretrained(store.local_path(tokenizer))
        built = _method_data(entry, store, inputs, read, tok, cfg)
        uri, options = parts.folder()
        place = CheckpointPlace(uri=f"{uri}/checkpoints", storage_options=options)
        resumed_from = (complete_steps(place) or [0])[-1]
        fault = os.environ.get("WINNOW_FAULT_AT_STEP")  # tests: kill a worker mid-run
        job = TrainJob(method=entry.name, config=cfg, data=built.data, tokenizer=store.folder(tokenizer),
                       init=store.folder(init) if init else None, checkpoints=place,
                       fault_at_step=int(fault) if fault else None)
        ensure_ray(ctx.ray)
        if resumed_from < cfg.optim.steps:
            with progress_bar(f"train {name}", cfg.optim.steps, ctx.show_progress, "steps") as bar:
                bar.set(resumed_from)
                fit(job, lambda m: bar.set(m["step"], info=f"loss {m['loss']:.3f}"))
        fetch_model(place, cfg.optim.steps, out)
        history = _history(place, cfg.optim.steps)
        log_history(ctx.tracking, run_name=f"{stage}[{name}]", tags={"winnow.run_id": ctx.run_id, "winnow.stage":
                    stage}, params=cfg.model_dump(mode="json"), history=history, step_key="step")
        return _finish(out, name, history, built.rows, built.tokens, resumed_from)

    return run_stage(ctx, stage, cfg, inputs, compute, resumable=True)


def _method_data(entry: MethodEntry, store: ArtifactStore, inputs: dict[str, ArtifactRef],
                 read: Callable[[ArtifactStore], Rows] | None, tok, cfg: TrainConfig) -> MethodData:
    """Read the tables the method needs (the stage reads the store; the method's builder is pure) and build."""
    if read is not None:
        rows = read(store)
    elif entry.tables is None:
        raise ValueError(f"method {entry.name!r} names no tables: its stage must read its rows itself")
    else:
        rows = {input: read_rows(store, inputs[input], table) for input, table in entry.tables(cfg).items()}
    try:
        return entry.build_data(rows, tok, cfg)
    except EmptyTable as empty:  # name the artifact the table came from
        raise ValueError(f"{inputs[empty.input].short}/{empty.table}.parquet is empty: {empty.why}") from None


def _history(place: CheckpointPlace, step: int) -> list[dict]:
    import tempfile

    import torch

    fs, root = place.open()
    with tempfile.TemporaryDirectory() as tmp:
        fs.get_file(f"{root}/step-{step:08d}/trainer_state.pt", f"{tmp}/state.pt")
        return torch.load(f"{tmp}/state.pt", weights_only=False)["history"]


def _finish(out: Path, name: str, history: list[dict], n_rows: int, n_tokens: int, resumed_from: int) -> dict:
    write_rows(out / "metrics.parquet", history)
    plot_loss(history, out / "loss.png", name)
    tail = history[-min(20, len(history)):]
    metrics = {"steps": len(history), "first_loss": history[0]["loss"],
               "final_loss": sum(h["loss"] for h in tail) / len(tail),
               "tokens_per_s": sum(h["tokens_per_s"] for h in tail) / len(tail), "train_rows": n_rows,
               "train_tokens": n_tokens, "resumed_from_step": resumed_from, "model_name": name}
    metrics |= {k: sum(h[k] for h in tail) / len(tail) for k in ("accuracy",) if k in history[-1]}
    (out / "winnow_train.json").write_text(json.dumps({"metrics": metrics, "rows": n_rows}))
    every = max(1, len(history) // 20)
    create_table_artifact(key=f"train-{_slug(name)}", description=f"training curve of {name}",
                          table=[{k: round(v, 5) if isinstance(v, float) else v for k, v in h.items()}
                                 for h in history[::every] + history[-1:]])
    return metrics


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in name.lower())


@task(name="train_sft", retries=1, cache_policy=NONE, task_run_name="train_sft[{name}]")
def train_sft(name: str, sources: list[SFTSource], tokenizer: ArtifactRef, init: ArtifactRef | None,
              cfg: SFTConfig, ctx: StageContext) -> ArtifactRef:
    """SFT from `init` (a model artifact) or from a fresh random init when `init` is None."""
    inputs = {f"data{i}:{s.split}": s.ref for i, s in enumerate(sources)} | {"tokenizer": tokenizer}
    if init is not None:
        inputs["init"] = init

    def read(store: ArtifactStore) -> Rows:
        rows = [row for s in sources for row in _checked_rows(read_rows(store, s.ref, s.split), s)]
        if not rows:
            raise ValueError("no usable (prompt, completion) rows in " + ", ".join(
                f"{s.ref.short}/{s.split}.parquet" for s in sources))
        return {"examples": rows}

    return fit_stage(name, "train_sft", "sft", inputs, tokenizer, init, cfg, ctx, read=read)


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
