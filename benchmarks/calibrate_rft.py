"""Calibrate the tiny-arith RFT recipe fast: the whole recipe in one process, many variants side by side.

The flow (flows/rft.py) is the product; this script is the lab bench used to choose its defaults. It runs the
same pieces (tiny-arith generator, digit tokenizer, tiny Llama, the SFT loop, a generation backend with the
calculator, the labeller and the rejection criteria) in one process without Ray or the store, on a GPU when
there is one, so variants are cheap to compare. Optimizer steps, batch sizes and seeds mean the
same on either device, so the accuracies carry over to the CPU defaults (timings do not).

    python benchmarks/calibrate_rft.py --parallel 8 \
        base:base_steps=400 long:base_steps=800,rft_steps=800 hot:temperature=1.0

Each variant prints one JSON line: base / RFT / control greedy accuracy on the held-out split with 95% CIs,
the sampling statistics, and the wall time of each phase.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from winnow.env import apply_defaults  # noqa: E402

apply_defaults()


@dataclass(frozen=True)
class Variant:
    name: str = "default"
    seed: int = 0
    n_train: int = 1000
    n_test: int = 1000
    min_steps: int = 2
    max_steps: int = 3
    max_operand: int = 9
    max_value: int = 50
    distractor_prob: float = 0.3
    shuffle_order_prob: float = 1.0
    hidden: int = 128
    layers: int = 4
    heads: int = 4
    ffn: int = 384
    batch: int = 32
    lr: float = 3e-3
    base_steps: int = 350
    rft_steps: int = 350
    k: int = 8
    temperature: float = 1.0
    calculator: bool = True  # GSM8K calculator fills in annotation results when sampling and evaluating
    criteria: str = "correct+valid_calculations+grounded_calculations+distinct_calc_path"  # as configs/rft/default.yaml
    control: bool = True  # train and score the compute-matched control (skip when known from another variant)
    backend: str = "vllm"  # generation backend for sampling and evaluation ("hf" on GPU machines without vLLM)
    threads: int = 2


def parse_variant(text: str) -> Variant:
    """`name:key=value,key=value` → Variant; unknown keys fail naming the key."""
    name, _, body = text.partition(":")
    types = {f.name: f.type for f in fields(Variant)}
    updates: dict = {"name": name}
    for pair in filter(None, body.split(",")):
        key, _, value = pair.partition("=")
        if key not in types:
            raise SystemExit(f"variant {name!r}: unknown key {key!r}; known: {sorted(types)}")
        kind = {"int": int, "float": float, "bool": lambda v: v.lower() in ("1", "true", "yes"), "str": str}
        updates[key] = kind[types[key]](value)
    return replace(Variant(), **updates)


def _generate(model_dir: Path, rows: list[dict], n: int, temperature: float, v: Variant, device_batch: int
              ) -> list:
    from ray_cluster.calculator import generate_records
    from ray_cluster.backends import open_backend
    from ray_cluster.generation import EngineSpec, PromptRecord, SamplingSpec
    from tasks.data.tiny_arith import to_prompt

    backend = open_backend(model_dir, "m", EngineSpec(backend=v.backend, batch_size=device_batch), v.threads)
    prompts = [PromptRecord(prompt_id=r["id"], text=to_prompt(r["question"])) for r in rows]
    sampling = SamplingSpec(n=n, temperature=temperature, max_tokens=160, calculator=v.calculator)
    out = generate_records(backend, prompts, sampling)
    backend.close()
    return out


def _evaluate(folders: dict[str, Path], test: list[dict], v: Variant, device_batch: int) -> dict:
    """Greedy pass@1 of each model on the held-out split, with its 95% Wilson interval."""
    from tasks.evaluation.intervals import wilson_ci95
    from tasks.labelling.label_math import label_math_answer
    from tasks.labelling.labellers import LabelOptions

    by_id, out = {r["id"]: r for r in test}, {}
    for name, folder in folders.items():
        records = _generate(folder, test, 1, 0.0, v, device_batch)
        hits = sum(label_math_answer(c.text, by_id[c.prompt_id], LabelOptions())["correct"] for c in records)
        out[f"{name}_acc"] = round(hits / len(test), 4)
        out[f"{name}_ci95"] = [round(x, 4) for x in wilson_ci95(hits, len(test))]
    return out


def run_variant(v: Variant) -> dict:
    import torch

    from models.sft_data import tokenize_pair
    from models.optim import OptimConfig
    from models.sft_train import run_sft
    from models.tiny_llama import ModelSize, build_tiny_llama, load_model_folder, save_model_folder
    from models.tokenizer import build_digit_tokenizer
    from tasks.data.tiny_arith import TinyArithSpec, generate_problems, to_completion, to_prompt
    from tasks.labelling.label_math import label_math_answer
    from tasks.labelling.labellers import LabelOptions
    from tasks.selection.select import select_per_prompt

    torch.set_num_threads(v.threads)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    gen_batch = 512 if device.type == "cuda" else 64
    timings, started = {}, time.time()
    train, test = generate_problems(TinyArithSpec(
        seed=v.seed, n_train=v.n_train, n_test=v.n_test, min_steps=v.min_steps, max_steps=v.max_steps,
        max_operand=v.max_operand, max_value=v.max_value, distractor_prob=v.distractor_prob,
        shuffle_order_prob=v.shuffle_order_prob))
    pairs = [(to_prompt(r["question"]), to_completion(r["answer"])) for r in train]
    tok = build_digit_tokenizer([p + c for p, c in pairs] + [to_prompt(r["question"]) for r in test])
    size = ModelSize(hidden_size=v.hidden, num_layers=v.layers, num_heads=v.heads, intermediate_size=v.ffn)
    work = Path(tempfile.mkdtemp(prefix=f"calib-{v.name}-"))

    def fit(name: str, data: list[tuple[str, str]], steps: int, init: torch.nn.Module | None):
        t0 = time.time()
        model = init if init is not None else build_tiny_llama(size, tok, seed=0)
        model.to(device)
        examples = [tokenize_pair(tok, p, c, 384) for p, c in data]
        optim = OptimConfig(steps=steps, batch_size=v.batch, lr=v.lr, warmup_steps=30)
        run_sft(model, examples, optim, tok.pad_token_id, device)
        save_model_folder(model.cpu(), tok, work / name)
        timings[f"train_{name}_s"] = round(time.time() - t0, 1)
        return work / name

    base_dir = fit("base", pairs, v.base_steps, None)
    t0 = time.time()
    samples = _generate(base_dir, train, v.k, v.temperature, v, gen_batch)
    timings["sample_s"] = round(time.time() - t0, 1)
    by_id = {r["id"]: r for r in train}
    labels = [c.model_dump() | label_math_answer(c.text, by_id[c.prompt_id], LabelOptions()) for c in samples]
    n_correct = sum(row["correct"] for row in labels)
    selected = [(to_prompt(by_id[pid]["question"]), row["text"])
                for pid, kept in select_per_prompt(labels, v.criteria.split("+")).items() for row in kept]
    rft_dir = fit("rft", pairs + selected, v.rft_steps, None)
    models = {"base": base_dir, "rft": rft_dir}
    if v.control:
        models["control"] = fit("control", pairs, v.rft_steps, load_model_folder(base_dir)[0])
    t0 = time.time()
    result = {"variant": asdict(v), "selected": len(selected), "sample_correct_rate": n_correct / len(samples),
              "new_paths_per_problem": len(selected) / len(train)}
    result |= _evaluate(models, test, v, gen_batch)
    timings["eval_s"] = round(time.time() - t0, 1)
    result["timings"] = timings | {"total_s": round(time.time() - started, 1)}
    result["rft_minus_base"] = round(result["rft_acc"] - result["base_acc"], 4)
    if v.control:
        result["rft_minus_control"] = round(result["rft_acc"] - result["control_acc"], 4)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("variants", nargs="*", default=["default:"], help="name:key=value,... (see Variant)")
    parser.add_argument("--parallel", type=int, default=1, help="variants run at once (separate processes)")
    parser.add_argument("--out", type=Path, help="also append each result line to this JSONL file")
    args = parser.parse_args()
    variants = [parse_variant(text) for text in args.variants]
    ctx = mp.get_context("spawn")
    with ctx.Pool(args.parallel) as pool:
        for result in pool.imap_unordered(run_variant, variants):
            line = json.dumps(result)
            print(line, flush=True)
            if args.out:
                with args.out.open("a") as fh:
                    fh.write(line + "\n")


if __name__ == "__main__":
    main()
