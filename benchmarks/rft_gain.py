"""Does RFT beat its base model and a compute-matched control on held-out problems, beyond training-run spread?

Runs the RFT flow (stages already in the store are reused) once per seed and prints greedy pass@1 of the base
SFT model, the model after each RFT round and the control (the base trained further on the original data for as
many optimizer steps as the RFT model got), each with a 95% Wilson interval, then one JSON line. A seed moves
the base's and RFT's init, every arm's data order and the sampling; the held-out problems stay the same. With
more than one seed the line adds the mean, standard deviation and a 95% t-interval over seeds per arm.

    python benchmarks/rft_gain.py [-c default] [--seeds 1] [-s key=value ...]
    python benchmarks/rft_gain.py -c plateau -s rounds=2 --seeds 3
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

from benchmarks.method_effects import over_seeds  # noqa: E402
from flows.config import load_config  # noqa: E402
from flows.rft import RFTConfig, rft  # noqa: E402
from tasks.core.store import ArtifactStore  # noqa: E402


def seed_overrides(seed: int) -> list[str]:
    # seed 0 is the config as written, so the quickstart's stages are reused as they are
    if seed == 0:
        return []
    return [f"base_sft.init_seed={seed}", f"base_sft.optim.seed={seed}", f"rft_sft.init_seed={seed}",
            f"rft_sft.optim.seed={seed}", f"sample.sampling.seed={seed}"]


def one_run(config: str, overrides: list[str]) -> dict:
    cfg = load_config(RFTConfig, "rft", config, overrides)
    result = rft(cfg)
    store = ArtifactStore(cfg.store)
    greedy = {model: store.manifest(metrics["pass@1"])["metrics"] for model, metrics in result.scores.items()}
    print(f"\n{'model':<10} {'metric':<8} {'n':>5} {'accuracy':>9}  95% CI")
    for model, metrics in result.scores.items():
        for ref in metrics.values():
            m = store.manifest(ref)["metrics"]
            print(f"{model:<10} {m['metric']:<8} {m['n']:>5} {m['accuracy']:>9.1%}  "
                  f"[{m['ci95'][0]:.1%}, {m['ci95'][1]:.1%}]")
    print(f"RFT - base: {greedy['rft']['accuracy'] - greedy['base']['accuracy']:+.1%}   RFT - control: "
          f"{greedy['rft']['accuracy'] - greedy['control']['accuracy']:+.1%}   report: {result.report_uri}")
    rounds = [{"round": r, "acc": greedy[f"rft{r}"]["accuracy"]} for r in range(1, cfg.rounds)]
    rounds.append({"round": cfg.rounds, "acc": greedy["rft"]["accuracy"]})
    return {"n_test": greedy["base"]["n"], "rounds": rounds,
            **{f"{arm}_acc": greedy[arm]["accuracy"] for arm in ("base", "rft", "control")},
            **{f"{arm}_ci95": greedy[arm]["ci95"] for arm in ("base", "rft", "control")}}


ARMS = ("base", "rft", "control")


def combine(runs: list[dict]) -> dict:
    """One run's line as it is; several runs' line: means per arm and per round, plus the spread over seeds."""
    if len(runs) == 1:
        return dict(runs[0])
    stats = {arm: over_seeds([run[f"{arm}_acc"] for run in runs]) for arm in ARMS}
    rounds = [{"round": r["round"], "acc": over_seeds([run["rounds"][i]["acc"] for run in runs])["mean"]}
              for i, r in enumerate(runs[0]["rounds"])]
    return {"n_test": runs[0]["n_test"], **{f"{arm}_acc": s["mean"] for arm, s in stats.items()},
            "rounds": rounds, "seeds": len(runs), "seed_sd": {arm: s["sd"] for arm, s in stats.items()},
            "seed_ci95": {arm: s["ci95"] for arm, s in stats.items()},
            "runs": [{k: run[k] for k in ("base_acc", "rft_acc", "control_acc", "rounds")} for run in runs]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-c", "--config", default="default")
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("-s", "--set", action="append", default=[], help="dotted override")
    args = parser.parse_args()
    started = time.time()
    runs = [one_run(args.config, seed_overrides(seed) + args.set) for seed in range(args.seeds)]
    from ray_cluster.connect import shutdown_ray

    shutdown_ray()  # Ray's last log lines must not land after the JSON line
    line = combine(runs)
    for arm, (mean, sd, (lo, hi)) in ((a, (line[f"{a}_acc"], line["seed_sd"][a], line["seed_ci95"][a]))
                                      for a in ARMS if "seed_sd" in line):
        print(f"{arm:<8} mean {mean:.1%}  sd {sd:.1%}  95% CI over seeds [{lo:.1%}, {hi:.1%}]")
    line["wall_s"] = round(time.time() - started, 1)
    print(json.dumps(line))


if __name__ == "__main__":
    main()
