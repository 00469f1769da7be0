"""Does RFT beat its base model and a compute-matched control on held-out problems?

Runs the RFT flow on the default config (stages already in the store are reused) and prints greedy pass@1 of
the base SFT model, the RFT model and the control (the base trained further on the original data for as many
optimizer steps as the RFT model got), each with a 95% Wilson interval, then one JSON line.

    python benchmarks/rft_gain.py [-c default] [-s key=value ...]
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

from flows.config import load_config  # noqa: E402
from flows.rft import RFTConfig, rft  # noqa: E402
from tasks.core.store import ArtifactStore  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-c", "--config", default="default")
    parser.add_argument("-s", "--set", action="append", default=[], help="dotted override")
    args = parser.parse_args()
    cfg = load_config(RFTConfig, "rft", args.config, args.set)
    started = time.time()
    result = rft(cfg)
    wall = time.time() - started
    import ray

    ray.shutdown()  # Ray's last log lines must not land after the JSON line
    store = ArtifactStore(cfg.store)
    rows = {}
    print(f"\n{'model':<10} {'metric':<8} {'n':>5} {'accuracy':>9}  95% CI")
    for model, metrics in result.scores.items():
        for name, ref in metrics.items():
            m = store.manifest(ref)["metrics"]
            print(f"{model:<10} {m['metric']:<8} {m['n']:>5} {m['accuracy']:>9.1%}  "
                  f"[{m['ci95'][0]:.1%}, {m['ci95'][1]:.1%}]")
            if name == "pass@1":
                rows[model] = m
    print(f"\nRFT - base: {rows['rft']['accuracy'] - rows['base']['accuracy']:+.1%}   "
          f"RFT - control: {rows['rft']['accuracy'] - rows['control']['accuracy']:+.1%}   report: {result.report_uri}")
    print(json.dumps({
        "n_test": rows["base"]["n"],
        "base_acc": rows["base"]["accuracy"], "rft_acc": rows["rft"]["accuracy"],
        "control_acc": rows["control"]["accuracy"],
        "base_ci95": rows["base"]["ci95"], "rft_ci95": rows["rft"]["ci95"], "control_ci95": rows["control"]["ci95"],
        "wall_s": round(wall, 1),
    }))


if __name__ == "__main__":
    main()
