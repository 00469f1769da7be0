"""Training from preferences: reward model (InstructGPT), DPO with cached reference log-probs, RRTF
(PanGu-Coder2); and the reward model's held-out pairwise accuracy. Tables come from tasks/selection/preferences.py."""
from __future__ import annotations

import json
from pathlib import Path

from prefect import task
from prefect.cache_policies import NONE

from models.sft_data import prompt_format, tokenize_pair
from ray_cluster.connect import ensure_ray
from ray_cluster.folders import RemoteFolder
from ray_cluster.reward_scorer import ScoreRequest, score_on_ray
from tasks.evaluation.intervals import wilson_ci95
from tasks.core.stage_cache import StageContext, run_stage
from tasks.core.store import ArtifactRef
from tasks.core.tables import read_rows, write_rows
from tasks.training.train import DPOTrainConfig, RewardModelTrainConfig, RRTFTrainConfig, SFTSource, fit_stage


@task(name="train_reward_model", retries=1, cache_policy=NONE, task_run_name="train_reward_model[{name}]")
def train_reward_model(name: str, preferences: ArtifactRef, tokenizer: ArtifactRef, init: ArtifactRef | None,
                       demonstrations: SFTSource | None, cfg: RewardModelTrainConfig,
                       ctx: StageContext) -> ArtifactRef:
    """A reward model from `pairs_train` (loss pairwise_rm) or `groups_train` (ranking_rm), started from the SFT
    model `init`; then offset so the demonstrations' mean reward is 0 (InstructGPT, Sec. 3.5)."""
    inputs = {"preferences": preferences, "tokenizer": tokenizer} | ({"init": init} if init else {}) | (
        {"demonstrations": demonstrations.ref} if demonstrations else {})
    ref = fit_stage(name, "train_reward_model", "reward_model", inputs, tokenizer, init, cfg, ctx)
    if demonstrations is None:
        return ref
    return normalize_reward_model(f"{name}-normalized", ref, demonstrations, ctx)


@task(name="normalize_reward_model", retries=1, cache_policy=NONE)
def normalize_reward_model(name: str, model: ArtifactRef, demonstrations: SFTSource, ctx: StageContext) -> ArtifactRef:
    """The same reward model with `config.reward_bias` set so the demonstrations (prompt + written solution)
    score 0 on average."""

    def compute(out: Path) -> dict:
        import shutil

        store = ctx.open_store()
        rows = read_rows(store, demonstrations.ref, demonstrations.split)
        requests = [ScoreRequest(i, r["prompt"] + r["completion"]) for i, r in enumerate(rows)]
        ensure_ray(ctx.ray)
        scores = _score(store.folder(model), requests)
        mean = sum(s.reward for s in scores) / max(1, len(scores))
        shutil.copytree(store.local_path(model), out, dirs_exist_ok=True)
        config = json.loads((out / "config.json").read_text())
        config["reward_bias"] = config.get("reward_bias", 0.0) - mean
        (out / "config.json").write_text(json.dumps(config, indent=2))
        return {"demonstrations": len(scores), "mean_reward_before": mean, "reward_bias": config["reward_bias"]}

    return run_stage(ctx, "normalize_reward_model", {"split": demonstrations.split},
                     {"model": model, "demonstrations": demonstrations.ref}, compute)


def _score(model: RemoteFolder, requests: list[ScoreRequest]) -> list:
    """Reward-model scores of (prompt + completion) texts on one scorer actor (small evaluation sets)."""
    return score_on_ray(model, requests, batch_size=32, max_len=1024, num_scorers=1, cpus_per_scorer=1,
                        use_gpu=False)


@task(name="evaluate_reward_model", retries=1, cache_policy=NONE, task_run_name="evaluate_reward_model[{name}]")
def evaluate_reward_model(name: str, model: ArtifactRef, preferences: ArtifactRef, ctx: StageContext,
                          table: str = "pairs_test") -> ArtifactRef:
    """Pairwise accuracy on held-out pairs: how often the chosen response outscores the rejected one."""

    def compute(out: Path) -> dict:
        store = ctx.open_store()
        rows = read_rows(store, preferences, table)
        requests = [ScoreRequest(2 * i + k, r["prompt"] + (r["chosen"], r["rejected"])[k])
                    for i, r in enumerate(rows) for k in (0, 1)]
        ensure_ray(ctx.ray)
        scores = {s.row_index: s.reward for s in _score(store.folder(model), requests)}
        scored = [r | {"chosen_reward": scores[2 * i], "rejected_reward": scores[2 * i + 1],
                       "correct": scores[2 * i] > scores[2 * i + 1]} for i, r in enumerate(rows)]
        write_rows(out / "pairs_scored.parquet", scored)
        hits = sum(r["correct"] for r in scored)
        return {"metric": "pairwise accuracy", "n": len(scored), "correct": hits,
                "accuracy": hits / len(scored) if scored else 0.0, "ci95": list(wilson_ci95(hits, len(scored)))}

    return run_stage(ctx, "evaluate_reward_model", {"table": table}, {"model": model, "preferences": preferences},
                     compute)


@task(name="reference_logprobs", retries=1, cache_policy=NONE, task_run_name="reference_logprobs[{name}]")
def reference_logprobs(name: str, preferences: ArtifactRef, reference: ArtifactRef, ctx: StageContext,
                       max_len: int = 384) -> ArtifactRef:
    """log π_ref(chosen | prompt) and log π_ref(rejected | prompt) of every training pair, computed once on Ray
    and kept as an artifact, so DPO never holds a second model while it trains."""

    def compute(out: Path) -> dict:
        import ray

        store = ctx.open_store()
        rows = read_rows(store, preferences, "pairs_train")
        ensure_ray(ctx.ray)
        logps = ray.get(ray.remote(_pair_logprobs).options(num_cpus=1).remote(
            store.folder(reference), rows, max_len))
        write_rows(out / "reference.parquet", [{"prompt_id": r["prompt_id"], "chosen_logp": c, "rejected_logp": j}
                                               for r, (c, j) in zip(rows, logps)])
        return {"pairs": len(rows)}

    return run_stage(ctx, "reference_logprobs", {"max_len": max_len},
                     {"preferences": preferences, "reference": reference}, compute)


def _pair_logprobs(folder: RemoteFolder, pairs: list[dict], max_len: int) -> list[tuple]:
    """log π(chosen | prompt), log π(rejected | prompt) of each pair row, its prompt shown as in training."""
    import torch

    from models.losses import sequence_logprobs
    from models.sft_data import collate
    from models.tiny_llama import load_model_folder
    from ray_cluster.folders import materialize

    model, tok = load_model_folder(materialize(folder))
    out = []
    with torch.no_grad():
        for start in range(0, len(pairs), 16):
            chunk = pairs[start: start + 16]
            examples = [tokenize_pair(tok, r["prompt"], r[side], max_len, **prompt_format(r))
                        for r in chunk for side in ("chosen", "rejected")]
            batch = collate(examples, tok.pad_token_id)
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
            logp = sequence_logprobs(logits, batch["input_ids"], batch["loss_mask"]).view(-1, 2)
            out += [tuple(row) for row in logp.tolist()]
    return out


@task(name="train_dpo", retries=1, cache_policy=NONE, task_run_name="train_dpo[{name}]")
def train_dpo(name: str, preferences: ArtifactRef, reference: ArtifactRef, tokenizer: ArtifactRef,
              init: ArtifactRef, cfg: DPOTrainConfig, ctx: StageContext) -> ArtifactRef:
    """DPO from `init` (usually the reference model itself) on `pairs_train`, with cached reference log-probs."""
    inputs = {"preferences": preferences, "reference": reference, "tokenizer": tokenizer, "init": init}
    return fit_stage(name, "train_dpo", "dpo", inputs, tokenizer, init, cfg, ctx)


@task(name="train_rrtf", retries=1, cache_policy=NONE, task_run_name="train_rrtf[{name}]")
def train_rrtf(name: str, preferences: ArtifactRef, tokenizer: ArtifactRef, init: ArtifactRef,
               cfg: RRTFTrainConfig, ctx: StageContext) -> ArtifactRef:
    """RRTF from `init` on `groups_train`: responses ranked by their scores (unit-test results)."""
    inputs = {"preferences": preferences, "tokenizer": tokenizer, "init": init}
    return fit_stage(name, "train_rrtf", "rrtf", inputs, tokenizer, init, cfg, ctx)
