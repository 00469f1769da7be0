"""Winnow's GRPO against TRL's GRPOTrainer: the same base, prompts, reward, group size, learning rate, schedule,
KL and clip, and the same number of policy updates, in one run (issue 16).

Per seed, each side trains from the SFT base of the GRPO config (the quickstart's, reused from the store) and the
resulting policy is scored by the same greedy held-out evaluation as the base. Winnow's side is the `train_online`
stage (vLLM rollouts on Ray, weights synced in place); TRL's is a stage here that runs `GRPOTrainer` in-process
(transformers generation: TRL 1.16 supports vLLM 0.22-0.31 only, shared/STACK.md). Wall times are each training
stage's own (start-up to saved policy; the stage manifests record them, so a rerun that reuses a stage reports the
time it took when it ran; Winnow's RL stages share the rollout engine the first one starts, so the first seed's
wall includes that engine's start and the others' do not). TRL is a benchmark-only extra
(`pip install -e ".[bench]"`), never a runtime dependency.

    python benchmarks/rl_vs_trl.py [-c vs_trl] [--seeds 3] [-s key=value ...]

Last line, one JSON object: {"winnow_acc", "trl_acc", "base_acc", "winnow_wall_s", "trl_wall_s", "updates", ...}
(accuracies and wall times are means over the seeds; per-seed values and spreads follow).
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from winnow.env import apply_defaults  # noqa: E402

apply_defaults()

from prefect import flow  # noqa: E402

from benchmarks.method_effects import over_seeds  # noqa: E402
from flows.base import start_run  # noqa: E402
from flows.config import load_config  # noqa: E402
from flows.evaluate import evaluate_model  # noqa: E402
from flows.grpo import GRPOConfig  # noqa: E402
from flows.policy import sft_base  # noqa: E402
from ray_cluster.rl_config import OnlineRLConfig  # noqa: E402
from tasks.core.stage_cache import StageContext, run_stage  # noqa: E402
from tasks.core.store import ArtifactRef, ArtifactStore  # noqa: E402
from tasks.core.tables import read_rows  # noqa: E402
from tasks.labelling.label import LabelConfig  # noqa: E402
from tasks.training.online_rl import OnlineRLStart, train_online  # noqa: E402

# Winnow's loss aggregation / advantage estimator -> TRL's loss_type / scale_rewards for the same objective
TRL_LOSS = {"seq_mean_token_mean": "grpo", "token_mean": "dapo", "seq_mean_token_sum_norm": "dr_grpo"}
TRL_SCALE = {"grpo": "group", "dr_grpo": "none"}


def trl_arguments(rl: OnlineRLConfig, seed: int, out: Path, micro_batch: int) -> dict:
    """GRPOConfig keyword arguments matching `rl` update for update; a setting TRL's GRPO has no equal for is
    refused here, before anything trains, rather than compared silently against something else."""
    algo, optim, rollout = rl.algorithm, rl.optim, rl.rollout
    problems = []
    if algo.aggregation not in TRL_LOSS:
        problems.append(f"rl.algorithm.aggregation={algo.aggregation!r} (TRL has {sorted(TRL_LOSS)})")
    if algo.advantage not in TRL_SCALE:
        problems.append(f"rl.algorithm.advantage={algo.advantage!r} (TRL's GRPO has {sorted(TRL_SCALE)})")
    if algo.kl_coef and (algo.kl_estimator != "k3" or algo.kl_in != "loss"):
        problems.append("the KL must be k3 in the loss (TRL's beta)")
    if optim.minibatches != 1:
        problems.append(f"rl.optim.minibatches={optim.minibatches} (one update per rollout batch: set 1)")
    completions = rollout.prompts_per_iteration * rollout.group_size
    if completions % micro_batch:
        problems.append(f"--micro-batch {micro_batch} must divide the {completions} completions per update")
    if problems:
        raise ValueError("rl_vs_trl cannot match these settings in TRL: " + "; ".join(problems))
    return dict(
        output_dir=str(out), use_cpu=True, seed=seed, data_seed=seed, report_to="none",
        save_strategy="no", logging_steps=1, bf16=False, dataloader_num_workers=0,
        max_steps=rl.iterations, num_iterations=optim.epochs,
        per_device_train_batch_size=micro_batch, gradient_accumulation_steps=completions // micro_batch,
        num_generations=rollout.group_size, max_completion_length=rollout.max_tokens,
        temperature=rollout.temperature, top_p=rollout.top_p,
        learning_rate=optim.lr, lr_scheduler_type="cosine" if optim.anneal else "constant",
        warmup_steps=optim.warmup_updates, weight_decay=optim.weight_decay, max_grad_norm=optim.grad_clip,
        adam_beta1=0.9, adam_beta2=0.95,  # ray_cluster/learner.py's AdamW
        beta=algo.kl_coef, epsilon=algo.clip_low, epsilon_high=algo.clip_high,
        loss_type=TRL_LOSS[algo.aggregation], scale_rewards=TRL_SCALE[algo.advantage],
    )


def prompts_as_trl_sees_them(tokenizer, rows: list[dict]) -> list[str]:
    """Prompt strings that TRL's tokenizer call turns into exactly the ids Winnow's engines get (BOS + text for a
    model without a chat template); a tokenizer that cannot be made to agree fails the benchmark, loudly."""
    from models.sft_data import encode_prompt, prompt_format

    want = encode_prompt(tokenizer, rows[0]["prompt"], **prompt_format(rows[0]))
    for prefix in ("", tokenizer.bos_token or ""):
        if tokenizer(text=prefix + rows[0]["prompt"])["input_ids"] == want:
            return [prefix + r["prompt"] for r in rows]
    raise ValueError("TRL would tokenize the prompts differently from Winnow's engines; the comparison would not "
                     "be of the same prompts")


def train_trl(name: str, base: ArtifactRef, problems: ArtifactRef, rl: OnlineRLConfig, label: LabelConfig,
              micro_batch: int, ctx: StageContext) -> ArtifactRef:
    """TRL's GRPOTrainer on the same train split and reward (Winnow's labellers, judged the same way), as a stage:
    its artifact is the trained policy's HF folder (evaluated like any model), its manifest the wall time."""
    def compute(out: Path) -> dict:
        import tempfile

        from datasets import Dataset
        from transformers import AutoTokenizer
        from trl import GRPOConfig as TRLGRPOConfig, GRPOTrainer

        from tasks.training.online_rl_steps import judge

        store = ctx.open_store()
        train = read_rows(store, problems, "train")
        by_id = {r["id"]: r for r in train}
        base_dir = store.local_path(base)
        tokenizer = AutoTokenizer.from_pretrained(base_dir)
        data = Dataset.from_dict({"prompt": prompts_as_trl_sees_them(tokenizer, train), "id": [r["id"] for r in train]})

        def reward(prompts, completions, id, **_):  # noqa: A002 (TRL passes dataset columns by name)
            return [lab["reward"] for lab in judge([(i, c, by_id[p]) for i, (c, p) in enumerate(zip(completions, id))],
                                                   label)]

        started, scratch = time.time(), Path(tempfile.mkdtemp(prefix="trl-run-"))
        trainer = GRPOTrainer(model=str(base_dir), reward_funcs=reward, processing_class=tokenizer, train_dataset=data,
                              args=TRLGRPOConfig(**trl_arguments(rl, rl.seed, scratch, micro_batch)))
        trainer.train()
        trainer.save_model(str(out))
        wall = time.time() - started
        (out / "training_args.bin").unlink(missing_ok=True)
        shutil.rmtree(scratch, ignore_errors=True)
        rewards = [h["reward"] for h in trainer.state.log_history if "reward" in h]
        return {"wall_s": wall, "updates": trainer.state.global_step, "first_reward": rewards[0] if rewards else None,
                "final_reward": rewards[-1] if rewards else None, "model_name": name}

    return run_stage(ctx, "train_trl_grpo", {"rl": rl.model_dump(mode="json"), "label": label.model_dump(mode="json"),
                                             "micro_batch": micro_batch}, {"policy": base, "problems": problems},
                     compute)


@flow(name="rl-vs-trl", log_prints=True)
def compare(cfg: GRPOConfig, seeds: int, micro_batch: int) -> dict:
    ctx = start_run(cfg)
    start = sft_base(cfg, ctx)
    store, evaluation = ArtifactStore(cfg.store), cfg.eval.greedy_only()

    def accuracy(name: str, model: ArtifactRef) -> float:
        return store.manifest(evaluate_model(name, model, start.problems, evaluation, ctx)["pass@1"])["metrics"][
            "accuracy"]

    # every training stage first, then every evaluation: Winnow's RL stages take turns on the rollout engine the
    # first one started (kept between stages, as for any run of several RL stages in one driver), so only the
    # first seed's wall includes a vLLM start (per-seed walls are printed); evaluation engines are another spec
    trained = []
    for seed in range(seeds):
        rl = cfg.rl.model_copy(update={"seed": cfg.rl.seed + seed})
        ours = train_online("grpo", OnlineRLStart(policy=start.base, problems=start.problems,
                                                  test_split=evaluation.greedy.split), rl, cfg.label, ctx)
        trained.append((rl, ours, train_trl("trl", start.base, start.problems, rl, cfg.label, micro_batch, ctx)))
    runs = []
    for rl, ours, theirs in trained:
        trl_manifest = store.manifest(theirs)
        runs.append({"seed": rl.seed, "winnow_acc": accuracy(f"winnow-{rl.seed}", ours),
                     "trl_acc": accuracy(f"trl-{rl.seed}", theirs),
                     "winnow_wall_s": store.manifest(ours)["timings"]["wall_s"],
                     "trl_wall_s": trl_manifest["metrics"]["wall_s"], "trl_updates": trl_manifest["metrics"]["updates"]})
        print(json.dumps(runs[-1]))
    return {"base_acc": accuracy("base", start.base), "runs": runs,
            "updates": cfg.rl.iterations * cfg.rl.optim.epochs * cfg.rl.optim.minibatches}


def summarise(result: dict) -> dict:
    runs = result["runs"]
    stats = {k: over_seeds([r[k] for r in runs]) for k in ("winnow_acc", "trl_acc", "winnow_wall_s", "trl_wall_s")}
    return {"winnow_acc": stats["winnow_acc"]["mean"], "trl_acc": stats["trl_acc"]["mean"],
            "base_acc": result["base_acc"], "winnow_wall_s": stats["winnow_wall_s"]["mean"],
            "trl_wall_s": stats["trl_wall_s"]["mean"], "updates": result["updates"], "seeds": len(runs),
            "acc_sd": {k: stats[f"{k}_acc"]["sd"] for k in ("winnow", "trl")},
            "acc_ci95": {k: stats[f"{k}_acc"]["ci95"] for k in ("winnow", "trl")},
            "wall_ratio": stats["winnow_wall_s"]["mean"] / stats["trl_wall_s"]["mean"],
            "runs": runs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-c", "--config", default="vs_trl", help="a configs/grpo/ config")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--micro-batch", type=int, default=32, help="TRL's per-device batch (gradient accumulation "
                        "makes up one update)")
    parser.add_argument("-s", "--set", action="append", default=[], help="dotted override")
    args = parser.parse_args()
    cfg = load_config(GRPOConfig, "grpo", args.config, args.set)
    trl_arguments(cfg.rl, 0, Path("."), args.micro_batch)  # refuse unmatched settings before the base trains
    line = summarise(compare(cfg, args.seeds, args.micro_batch))
    from ray_cluster.connect import shutdown_ray

    shutdown_ray()  # Ray's last log lines must not land after the JSON line
    print(f"base {line['base_acc']:.1%}   Winnow {line['winnow_acc']:.1%} (sd {line['acc_sd']['winnow']:.1%})   "
          f"TRL {line['trl_acc']:.1%} (sd {line['acc_sd']['trl']:.1%})   wall Winnow/TRL {line['wall_ratio']:.2f}x")
    print(json.dumps(line))


if __name__ == "__main__":
    main()
