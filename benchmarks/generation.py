"""Output tokens/s of Winnow's generate stage against raw vLLM and batched transformers `generate`, in one run.

Same model, same prompts (same token ids), same sampling (n, temperature, per-prompt seeds, fixed length via
ignore_eos so every backend produces the same number of tokens). Measured, one after the other:

  (b) raw   `vllm.LLM.generate` in this process, all prompts in one call
  (a) winnow  the `sample_completions` stage: engine actor on Ray, shards dispatched, each shard written to the
              store as it finishes (1 engine × 2 CPUs; then 2 engines × 1 CPU for the scaling curve)
  (c) hf    `model.generate` batched (a prefix of the prompts: its rate, not its total, is compared)

Rates exclude start-up (model load / engine start), which is printed separately.

    python benchmarks/generation.py [--model tiny30m|smollm2] [--prompts 128] [--n 4] [--max-tokens 64]
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from winnow.env import apply_defaults  # noqa: E402

apply_defaults()

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from ray_cluster.connect import RayConfig, ensure_ray  # noqa: E402
from ray_cluster.generation import PromptRecord, SamplingSpec, prompt_seed  # noqa: E402
from ray_cluster.generation import EngineSpec  # noqa: E402
from ray_cluster.model_inputs import encode_for_model  # noqa: E402
from ray_cluster.vllm_backend import engine_kwargs  # noqa: E402
from tasks.generation.generate import GenerateConfig, load_prompts, sample_completions  # noqa: E402
from tasks.core.stage_cache import StageContext, run_stage  # noqa: E402
from tasks.core.store import ArtifactRef, StoreSpec  # noqa: E402

console = Console(stderr=True)


def tiny30m(ctx: StageContext) -> tuple[ArtifactRef, ArtifactRef, str]:
    """A ~30M-parameter Llama (random init) with the tiny-arith tokenizer, prompted with tiny-arith questions."""
    from models.tiny_llama import ModelSize, build_tiny_llama, count_parameters, save_model_folder
    from tasks.data.prepare import TinyArithConfig, TokenizerConfig, build_tokenizer, make_tiny_arith

    problems = make_tiny_arith.fn(TinyArithConfig(n_train=200, n_test=1000), ctx)
    tokenizer_ref = build_tokenizer.fn(problems, TokenizerConfig(), ctx)
    size = ModelSize(hidden_size=512, num_layers=9, num_heads=8, intermediate_size=1536, max_positions=512)

    def compute(out: Path) -> dict:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(ctx.open_store().local_path(tokenizer_ref))
        model = build_tiny_llama(size, tokenizer, seed=0)
        save_model_folder(model, tokenizer, out)
        return {"parameters": count_parameters(model)}

    model = run_stage(ctx, "bench_random_llama", size.model_dump(), {"tokenizer": tokenizer_ref}, compute)
    return problems, model, "test"


def smollm2(ctx: StageContext) -> tuple[ArtifactRef, ArtifactRef, str]:
    from tasks.data.import_model import GGUFModelConfig, import_gguf_model
    from tasks.data.hf_source import DatasetConfig
    from tasks.data.prepare_dataset import load_dataset

    gsm8k = DatasetConfig.model_validate({"builtin": "gsm8k"})
    return load_dataset.fn(gsm8k, ctx), import_gguf_model.fn(GGUFModelConfig(), ctx), "test"


def raw_vllm(model_dir: Path, prompts: list[PromptRecord], sampling: SamplingSpec, max_model_len: int | None
             ) -> dict:
    from transformers import AutoTokenizer
    from vllm import LLM, SamplingParams

    started = time.time()
    llm = LLM(**engine_kwargs(model_dir, EngineSpec(max_model_len=max_model_len)))  # what the stage's engine gets
    start_s = time.time() - started
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    ids = [encode_for_model(tokenizer, p.text, p.chat_template, system=p.system) for p in prompts]
    params = [SamplingParams(n=sampling.n, temperature=sampling.temperature, max_tokens=sampling.max_tokens,
                             ignore_eos=True, seed=prompt_seed(sampling.seed, p.prompt_id)) for p in prompts]
    started = time.time()
    outputs = llm.generate([{"prompt_token_ids": x} for x in ids], params, use_tqdm=False)
    wall = time.time() - started
    tokens = sum(len(s.token_ids) for o in outputs for s in o.outputs)
    llm.llm_engine.engine_core.shutdown()
    del llm
    return {"tok_s": tokens / wall, "tokens": tokens, "wall_s": wall, "start_s": start_s}


def hf_generate(model_dir: Path, prompts: list[PromptRecord], sampling: SamplingSpec, batch_size: int) -> dict:
    from ray_cluster.hf_backend import HFBackend

    started = time.time()
    backend = HFBackend(model_dir, "hf", EngineSpec(backend="hf", batch_size=batch_size), threads=2)
    start_s = time.time() - started
    started = time.time()
    records = backend.generate(prompts, sampling)
    wall = time.time() - started
    tokens = sum(r.completion_tokens for r in records)
    return {"tok_s": tokens / wall, "tokens": tokens, "wall_s": wall, "start_s": start_s}


def winnow_stage(problems: ArtifactRef, model: ArtifactRef, cfg: GenerateConfig, ray_cfg: RayConfig) -> dict:
    with tempfile.TemporaryDirectory() as tmp:  # a fresh store: nothing to reuse, every shard generated
        ctx = StageContext(store=StoreSpec(url=tmp), ray=ray_cfg, show_progress=True)
        started = time.time()
        ref = sample_completions.fn("bench", problems, {"model": model}, cfg, ctx)
        total = time.time() - started
        m = ctx.open_store().manifest(ref)["metrics"]
    return {"tok_s": m["wall_tokens_per_s"], "tokens": m["completion_tokens"], "wall_s": m["generate_wall_s"],
            "start_s": m["engine_start_s"], "stage_s": total}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=["tiny30m", "smollm2"], default="tiny30m")
    parser.add_argument("--prompts", type=int, default=128)
    parser.add_argument("--n", type=int, default=4)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--shard-size", type=int, default=32)
    parser.add_argument("--hf-prompts", type=int, default=32, help="prompts for the (slow) HF baseline")
    parser.add_argument("--hf-batch", type=int, default=32, help="prompts per HF generate batch")
    parser.add_argument("--store", default=".winnow/bench-store", help="where the model and prompts are kept")
    args = parser.parse_args()

    ray_cfg = RayConfig(num_cpus=2)
    ctx = StageContext(store=StoreSpec(url=args.store), ray=ray_cfg, show_progress=False)
    problems, model, split = {"tiny30m": tiny30m, "smollm2": smollm2}[args.model](ctx)
    store = ctx.open_store()
    model_dir = store.local_path(model)
    max_model_len = 2048 if args.model == "smollm2" else None
    sampling = SamplingSpec(n=args.n, temperature=0.8, max_tokens=args.max_tokens, ignore_eos=True, seed=0)
    cfg = GenerateConfig(split=split, limit=args.prompts, sampling=sampling, shard_size=args.shard_size,
                         engine={"backend": "vllm", "max_model_len": max_model_len})
    prompts = load_prompts(store, problems, cfg)
    ensure_ray(ray_cfg)  # a cluster is long-lived: its start is not part of any stage

    results = {}
    console.print("[cyan](b) raw vLLM[/]")
    results["vllm"] = raw_vllm(model_dir, prompts, sampling, max_model_len)
    console.print("[cyan](a) winnow stage, 1 engine × 2 CPUs[/]")
    results["winnow_1"] = winnow_stage(problems, model, cfg, ray_cfg)
    console.print("[cyan]winnow stage, 2 engines × 1 CPU[/]")
    two = cfg.model_copy(update={"pool": cfg.pool.model_copy(update={"num_engines": 2, "cpus_per_engine": 1})})
    results["winnow_2"] = winnow_stage(problems, model, two, ray_cfg)
    console.print("[cyan](c) transformers generate, batched[/]")
    results["hf"] = hf_generate(model_dir, prompts[: args.hf_prompts], sampling, args.hf_batch)

    from ray_cluster.connect import shutdown_ray

    shutdown_ray()  # the engines' last log lines must not land after the JSON line
    params = store.manifest(model)["metrics"].get("parameters")
    table = Table(title=f"generation throughput: {args.model} ({params} parameters), {len(prompts)} prompts × "
                        f"n={args.n} × {args.max_tokens} tokens")
    for column in ("run", "output tokens", "generate wall s", "tokens/s", "start-up s", "vs raw vLLM"):
        table.add_column(column, justify="right")
    for name, r in results.items():
        table.add_row(name, str(r["tokens"]), f"{r['wall_s']:.1f}", f"{r['tok_s']:.0f}", f"{r['start_s']:.1f}",
                      f"{r['tok_s'] / results['vllm']['tok_s']:.2f}")
    Console().print(table)
    winnow = results["winnow_1"]["tok_s"]
    print(f"winnow/raw vLLM = {winnow / results['vllm']['tok_s']:.3f}; winnow/HF = {winnow / results['hf']['tok_s']:.2f};"
          f" 2 engines/1 engine = {results['winnow_2']['tok_s'] / winnow:.2f}")
    print(json.dumps({"winnow_tok_s": round(winnow, 1), "vllm_tok_s": round(results["vllm"]["tok_s"], 1),
                      "hf_tok_s": round(results["hf"]["tok_s"], 1), "engines_1_tok_s": round(winnow, 1),
                      "engines_2_tok_s": round(results["winnow_2"]["tok_s"], 1), "model": args.model,
                      "tokens": {name: r["tokens"] for name, r in results.items()},
                      "parameters": params}))


if __name__ == "__main__":
    main()
