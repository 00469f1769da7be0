"""Do the reward model, RRTF and DPO defaults show their papers' effects, beyond the spread between training runs?

Runs `reward_model` once, and `rrtf` and `dpo` once per seed (the seed of the base's init and of every arm's
data order: `base_sft.init_seed`, `base_sft.optim.seed`, and the method's `optim.seed`, which RRTF's and DPO's
controls share), reusing every stage already in the store (the quickstart's, where they are the same). Per arm: greedy
pass@1 on the held-out problems per seed, then the mean, the standard deviation and a 95% t-interval over seeds
beside each run's own test-set interval: a claimed effect must clear both. Prints a table, then, last, one JSON
line (accuracies are means over seeds):

  {"reward_model": {"pairwise_acc", "n_pairs", "best_of_8", "maj_8"}, "rrtf": {"base", "rrtf", "control",
   "n_test", "seeds", "seed_sd", "seed_ci95", "seed_diff"}, "dpo": {"base", "dpo", "control", "n_test", "seeds",
   "seed_sd", "seed_ci95", "seed_diff"}}   (seed_diff: the method minus each other arm, paired by seed, over seeds)

    python benchmarks/method_effects.py [--seeds 3] [--rrtf-config default] [-s dpo:eval.maj=null ...]
    python benchmarks/method_effects.py --only dpo --only reward_model   # a subset; the JSON line holds those
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from winnow.env import apply_defaults  # noqa: E402

apply_defaults()

from flows.config import load_config  # noqa: E402
from tasks.core.store import ArtifactStore  # noqa: E402

# two-sided 95% Student t quantiles by degrees of freedom (seeds - 1): a 3-seed interval is wide, and says so
T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262}


def seed_overrides(method_key: str, seed: int) -> list[str]:
    return [f"base_sft.init_seed={seed}", f"base_sft.optim.seed={seed}", f"{method_key}.optim.seed={seed}"]


def over_seeds(values: list[float]) -> dict:
    mean = statistics.fmean(values)
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    half = T95.get(len(values) - 1, 1.96) * sd / len(values) ** 0.5 if len(values) > 1 else 0.0
    return {"mean": mean, "sd": sd, "ci95": [mean - half, mean + half], "per_seed": values}


def paired_over_seeds(per_arm: dict[str, list[float]], method: str) -> dict[str, dict]:
    """The method minus each other arm, seed by seed, then over seeds: the arms of one seed share its base (and
    RRTF's control its data order), so the base's own spread between seeds cancels in the difference."""
    return {arm: over_seeds([m - a for m, a in zip(per_arm[method], values)])
            for arm, values in per_arm.items() if arm != method}


def pass_at_1(store: ArtifactStore, scores: dict) -> dict[str, dict]:
    return {model: store.manifest(metrics["pass@1"])["metrics"] for model, metrics in scores.items()}


def run_method(flow_name: str, config: str, method_key: str, seeds: int, extra: list[str]) -> dict:
    from flows.dpo import DPOFlowConfig, dpo
    from flows.rrtf import RRTFConfig, rrtf

    config_cls, flow = {"rrtf": (RRTFConfig, rrtf), "dpo": (DPOFlowConfig, dpo)}[flow_name]
    per_arm: dict[str, list[float]] = {}
    n_test, runs = None, []
    for seed in range(seeds):
        cfg = load_config(config_cls, flow_name, config, seed_overrides(method_key, seed) + extra)
        result = flow(cfg)
        scored = pass_at_1(ArtifactStore(cfg.store), result.scores)
        runs.append({arm: {"acc": m["accuracy"], "ci95": m["ci95"]} for arm, m in scored.items()})
        for arm, m in scored.items():
            per_arm.setdefault(arm, []).append(m["accuracy"])
            n_test = m["n"]
    stats = {arm: over_seeds(values) for arm, values in per_arm.items()}
    return {**{arm: s["mean"] for arm, s in stats.items()}, "n_test": n_test, "seeds": seeds,
            "seed_sd": {arm: s["sd"] for arm, s in stats.items()},
            "seed_ci95": {arm: s["ci95"] for arm, s in stats.items()},
            "seed_diff": paired_over_seeds(per_arm, flow_name), "runs": runs}


def run_reward_model(config: str, extra: list[str]) -> dict:
    from flows.reward_model import RewardModelConfig, reward_model

    cfg = load_config(RewardModelConfig, "reward_model", config, extra)
    result = reward_model(cfg)
    store = ArtifactStore(cfg.store)
    pairs = store.manifest(result.outputs["evaluation"])["metrics"]
    curves = store.manifest(result.outputs["best_of_n"])["metrics"]["curves"]
    at8 = next((c for c in curves if c["n"] == 8), curves[-1])
    return {"pairwise_acc": pairs["accuracy"], "pairwise_ci95": pairs["ci95"], "n_pairs": pairs["n"],
            "best_of_8": at8["rm"], "maj_8": at8["maj"], "pass_8": at8["oracle"], "best_of_n_at": at8["n"],
            "n_test": at8["problems"]}


def show(results: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="method effects (greedy pass@1 on held-out problems; mean over seeds)")
    for column in ("method", "arm", "mean", "sd over seeds", "95% CI over seeds", "per seed"):
        table.add_column(column)
    for method in ("rrtf", "dpo"):
        if method not in results:
            continue
        r = results[method]
        for arm, sd in r["seed_sd"].items():
            lo, hi = r["seed_ci95"][arm]
            table.add_row(method, arm, f"{r[arm]:.1%}", f"{sd:.1%}", f"[{lo:.1%}, {hi:.1%}]",
                          ", ".join(f"{run[arm]['acc']:.1%}" for run in r["runs"]))
    Console().print(table)
    for method in ("rrtf", "dpo"):
        for arm, d in results.get(method, {}).get("seed_diff", {}).items():
            Console().print(f"{method} - {arm}, paired by seed: {d['mean']:+.1%} (sd {d['sd']:.1%}, 95% CI over seeds "
                            f"[{d['ci95'][0]:+.1%}, {d['ci95'][1]:+.1%}]; per seed "
                            + ", ".join(f"{v:+.1%}" for v in d["per_seed"]) + ")")
    if "reward_model" not in results:
        return
    rm = results["reward_model"]
    Console().print(f"reward model: held-out pairwise accuracy {rm['pairwise_acc']:.1%} (n = {rm['n_pairs']}); "
                    f"best-of-{rm['best_of_n_at']} by the RM {rm['best_of_8']:.1%} vs majority {rm['maj_8']:.1%} "
                    f"(any correct {rm['pass_8']:.1%}, {rm['n_test']} problems)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--rm-config", default="default")
    parser.add_argument("--rrtf-config", default="default")
    parser.add_argument("--dpo-config", default="default")
    parser.add_argument("-s", "--set", action="append", default=[],
                        help="flow:dotted=value, e.g. rrtf:store.url=/tmp/s (flow: reward_model, rrtf, dpo, all)")
    parser.add_argument("--only", action="append", choices=("reward_model", "rrtf", "dpo"), default=[],
                        help="run only these methods (repeatable); default all three")
    args = parser.parse_args()
    methods = args.only or ["reward_model", "rrtf", "dpo"]

    def extra(flow: str) -> list[str]:
        return [o.split(":", 1)[1] for o in args.set if o.split(":", 1)[0] in (flow, "all")]

    started = time.time()
    runs = {"reward_model": lambda: run_reward_model(args.rm_config, extra("reward_model")),
            "rrtf": lambda: run_method("rrtf", args.rrtf_config, "rrtf", args.seeds, extra("rrtf")),
            "dpo": lambda: run_method("dpo", args.dpo_config, "dpo", args.seeds, extra("dpo"))}
    # DPO first: its seed-0 base and samples are the reward model's, so the RM reuses them
    results = {method: runs[method]() for method in ("dpo", "reward_model", "rrtf") if method in methods}
    from ray_cluster.connect import shutdown_ray

    shutdown_ray()  # Ray's last log lines must not land after the JSON line
    show(results)
    results["wall_s"] = round(time.time() - started, 1)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
