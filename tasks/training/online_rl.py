"""Online RL as one resumable stage: rollouts on long-lived engines → rewards from the registered labellers →
advantages → clipped policy update → new weights into the engines, iteration after iteration (issue 16).

The engines (ray_cluster/engine_pool.GenerationEngine) and the trainer (ray_cluster/policy_trainer.py) are Ray
actors started once per run. After each update the trainer's weights go to every engine through Ray's object
store (the trainer's returned object, read zero-copy by engines on the same node) and vLLM reloads them in place: no engine
restart and no round trip through the artifact store per step. A collective (NCCL broadcast) is faster across
GPUs but ties trainer and engines into one process group; the object store works on CPU, across nodes, and
with any number of engines, and the sync time is recorded every iteration so the cost is visible.

What persists (through StageParts, so `kill -9` of the driver loses at most `checkpoint_every` iterations):
`iter-NNNNN.parquet`, every iteration's rollouts and rewards (ROLLOUTS); `ckpt-NNNNN.pt`, the policy, optimiser,
schedule, RNG, KL-controller state, prompt position and history. The committed artifact is the final HF model
folder, `rollouts.parquet` (all iterations), `metrics.parquet` (one row per iteration) and `curves.png`.
"""
from __future__ import annotations

import os
import shutil
import signal
import time
from pathlib import Path

import torch
from prefect import task
from prefect.cache_policies import NONE
from pydantic import BaseModel

from ray_cluster.rl_config import OnlineRLConfig
from models.rl.losses import AdaptiveKL, FixedKL
from ray_cluster.generation import prompt_seed
from tasks.core.progress import Laps, progress_bar, run_logger
from tasks.core.stage_cache import StageContext, StageParts, run_stage
from tasks.core.store import ArtifactRef
from tasks.core.tracking import log_history
from tasks.core.tables import read_rows
from tasks.labelling.label import LabelConfig
from tasks.training.online_rl_steps import (Actors, advantages_for, evaluate_greedy, label_samples, prompt_order,
                                            rollout, rollout_rows, start_actors)


class OnlineRLStart(BaseModel):
    """What the stage starts from: the policy (an HF folder artifact), the problems and their splits, and for
    InstructGPT's chain the reward model (its score is the reward; the critic starts from it)."""

    policy: ArtifactRef
    problems: ArtifactRef
    reward_model: ArtifactRef | None = None
    train_split: str = "train"
    test_split: str = "test"


def kl_controller(cfg: OnlineRLConfig) -> FixedKL:
    alg = cfg.algorithm
    if alg.adaptive_kl is None:
        return FixedKL(alg.kl_coef)
    return AdaptiveKL(alg.kl_coef, alg.adaptive_kl.target, alg.adaptive_kl.horizon)


@task(name="train_online", retries=0, cache_policy=NONE, task_run_name="train_online[{name}]")
def train_online(name: str, start: OnlineRLStart, cfg: OnlineRLConfig, label: LabelConfig,
                 ctx: StageContext) -> ArtifactRef:
    inputs = {"policy": start.policy, "problems": start.problems} | (
        {"reward_model": start.reward_model} if start.reward_model is not None else {})

    def compute(out: Path, parts: StageParts) -> dict:
        store = ctx.open_store()
        train = read_rows(store, start.problems, start.train_split)
        test = read_rows(store, start.problems, start.test_split)[: cfg.eval_limit]
        rm = store.folder(start.reward_model) if start.reward_model is not None else None
        actors = start_actors(store.folder(start.policy), store.local_path(start.policy), train + test, cfg, ctx,
                              critic_init=rm, reward_model=rm)
        finished = False
        try:
            history, kl = _resume(actors, parts, cfg, out)
            resumed_from = len(history)
            _loop(name, actors, train, test, cfg, label, parts, history, kl, ctx)
            log_history(ctx.tracking, run_name=f"train_online[{name}]", tags={"winnow.run_id": ctx.run_id,
                        "winnow.stage": "train_online"}, params=_keyed(cfg, label), history=history,
                        step_key="iteration")
            result = _finish(name, actors, store.local_path(start.policy), parts, history, out)
            finished = True
            return result | {"resumed_from_iteration": resumed_from}
        finally:
            actors.close(finished)  # a failed run's engines are in an unknown state: closed, not kept

    return run_stage(ctx, "train_online", _keyed(cfg, label),
                     inputs, compute, resumable=True)


def _keyed(cfg: OnlineRLConfig, label: LabelConfig) -> dict:
    # the stage key covers the RL config and how rewards are computed
    return {"rl": cfg.model_dump(mode="json"), "label": label.model_dump(mode="json")}


def _resume(actors: Actors, parts: StageParts, cfg: OnlineRLConfig, scratch: Path) -> tuple[list[dict], FixedKL]:
    """The newest complete checkpoint back into the trainer and engines; ([], fresh controller) when none."""
    kl = kl_controller(cfg)
    done = sorted(p for p in parts.finished() if p.startswith("ckpt-"))
    if not done:
        return [], kl
    state = torch.load(parts.fetch(parts.finished()[done[-1]], scratch / "resume.pt"), weights_only=False)
    actors.restore(state["learners"])
    kl.load_state_dict(state["kl"])
    run_logger().info(f"resuming after iteration {state['iteration']} (checkpoint {done[-1]})")
    return state["history"], kl


def _loop(name: str, actors: Actors, train: list[dict], test: list[dict], cfg: OnlineRLConfig,
          label: LabelConfig, parts: StageParts, history: list[dict], kl: FixedKL, ctx: StageContext) -> None:
    log, per_iter = run_logger(), cfg.rollout.prompts_per_iteration
    with progress_bar(f"online RL {name}", cfg.iterations, ctx.show_progress, "iterations") as bar:
        bar.set(len(history))
        for it in range(len(history), cfg.iterations):
            started = time.time()
            problems = prompt_order(train, cfg.seed, it * per_iter, per_iter)  # position = it × P: resume-exact
            laps = Laps()
            samples = rollout(actors, problems, cfg, seed=prompt_seed(cfg.seed, f"iteration-{it}"))
            laps.mark("rollout_s")
            labels = label_samples(actors, problems, samples, label, cfg.rm_times_labels)
            laps.mark("label_s")
            batch = advantages_for(actors, problems, samples, labels, cfg, kl.value)
            laps.mark("score_s")
            stats = actors.update(batch, kl.value, seed=cfg.seed * 100_003 + it)
            laps.mark("update_s")
            kl.update(stats["kl"], per_iter * cfg.rollout.group_size)
            sync_s = actors.sync_weights()
            row = batch.metrics | stats | laps.seconds | {"iteration": it + 1, "sync_s": sync_s, "kl_coef": kl.value}
            due = (it + 1) % cfg.eval_every == 0 or it + 1 == cfg.iterations
            row["heldout_acc"] = evaluate_greedy(actors, test, label) if due else None  # a column in every row
            row["wall_s"] = time.time() - started
            history.append(row)
            _persist(parts, it, rollout_rows(it + 1, problems, samples, labels, batch), history, actors, kl, cfg)
            if os.environ.get("WINNOW_KILL_AFTER_ITERATION") == str(it + 1):  # tests: kill -9 of the driver
                os.kill(os.getpid(), signal.SIGKILL)
            log.info(f"iteration {it + 1}/{cfg.iterations}: reward {row['reward_mean']:.3f} "
                     f"kl {row['kl']:.4f} clip {row['clip_frac']:.3f} sync {sync_s:.2f}s"
                     + (f" held-out {row['heldout_acc']:.1%}" if due else ""))
            bar.set(it + 1, info=f"reward {row['reward_mean']:.3f}")


def _persist(parts: StageParts, it: int, rows: list[dict], history: list[dict], actors: Actors, kl: FixedKL,
             cfg: OnlineRLConfig) -> None:
    import tempfile

    from tasks.core.records import ROLLOUTS
    from tasks.core.tables import write_records

    with tempfile.TemporaryDirectory() as tmp:
        write_records(Path(tmp) / "rollouts.parquet", rows, ROLLOUTS)
        parts.put(f"iter-{it + 1:05d}.parquet", Path(tmp) / "rollouts.parquet")
        if (it + 1) % cfg.checkpoint_every == 0 and it + 1 < cfg.iterations:
            torch.save({"iteration": it + 1, "learners": actors.learner_state(), "kl": kl.state_dict(),
                        "history": history}, Path(tmp) / "ckpt.pt")
            parts.put(f"ckpt-{it + 1:05d}.pt", Path(tmp) / "ckpt.pt")


def _finish(name: str, actors: Actors, base: Path, parts: StageParts, history: list[dict], out: Path) -> dict:
    """The artifact: the trained policy as an HF folder beside its rollouts, per-iteration metrics and curves."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from prefect.artifacts import create_table_artifact

    from models.tiny_llama import load_model_folder, save_model_folder
    from tasks.core.tables import write_rows

    import ray

    model, tokenizer = load_model_folder(base)
    model.load_state_dict(ray.get(actors.trainer.weights.remote()))  # the policy only: no optimiser, no critic
    save_model_folder(model, tokenizer, out)
    finished = parts.finished()
    (out / "scratch").mkdir(parents=True, exist_ok=True)
    tables = [pq.read_table(parts.fetch(finished[p], out / "scratch" / p))
              for p in sorted(p for p in finished if p.startswith("iter-"))]
    pq.write_table(pa.concat_tables(tables), out / "rollouts.parquet")
    shutil.rmtree(out / "scratch", ignore_errors=True)
    write_rows(out / "metrics.parquet", history)
    plot_curves(history, out / "curves.png", name)
    from prefect.context import FlowRunContext, TaskRunContext

    if TaskRunContext.get() or FlowRunContext.get():  # the stage called as a plain function has no UI to go to
        create_table_artifact(key=f"online-{name.lower()}", description=f"online RL {name}: one row per iteration",
                              table=[{k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()}
                                     for row in history])
    tail = history[-min(5, len(history)):]
    evals = [row["heldout_acc"] for row in history if row.get("heldout_acc") is not None]
    return {"iterations": len(history), "first_reward": history[0]["reward_mean"],
            "final_reward": sum(r["reward_mean"] for r in tail) / len(tail), "heldout_curve": evals,
            "sync_s": sum(r["sync_s"] for r in history) / len(history),
            "logprob_diff": sum(r["logprob_diff"] for r in history) / len(history),
            "samples": sum(t.num_rows for t in tables), "model_name": name}


def plot_curves(history: list[dict], path: Path, name: str) -> None:
    """Training reward and held-out greedy accuracy per iteration, and the KL to the reference."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    its = [row["iteration"] for row in history]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.5))
    left.plot(its, [row["reward_mean"] for row in history], label="train reward (mean)")
    left.plot(its, [row["accuracy"] for row in history], label="rollouts correct (true)")
    if history[0].get("rm_score") is not None:  # RM score rising while accuracy falls = over-optimisation
        left.plot(its, [row["rm_score"] for row in history], label="reward model score")
    evals = [(row["iteration"], row["heldout_acc"]) for row in history if row.get("heldout_acc") is not None]
    if evals:
        left.plot(*zip(*evals), marker="o", label="held-out greedy accuracy")
    left.set_xlabel("iteration"), left.legend(), left.set_title(f"{name}: reward and accuracy")
    right.plot(its, [row["kl"] for row in history], label="KL to reference (loss estimator)")
    right.plot(its, [row["clip_frac"] for row in history], label="clip fraction")
    right.set_xlabel("iteration"), right.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
