"""Does process supervision pick better answers than outcome supervision? ("Let's Verify Step by Step";
Math-Shepherd.) Runs the `process_reward` flow (reusing every stage already in the store: the reward-model
default's policy, samples and outcome RM where they are the same), then checks, on tiny-arith, where the truth of
every step is known exactly (tasks/data/tiny_arith_steps.py), how often Math-Shepherd's automatic labels and
the PRM's verdicts agree with it. Prints a table, then, last, one JSON line:

  {"n": 16, "greedy", "majority", "orm", "prm", "n_test", "ci95": {...}, "step_labels_vs_truth",
   "prm_vs_truth", "prm_vs_labels", "n_steps", "labels_by_class", "prm_by_class", "wall_s"}

(`*_by_class`: agreement on truly good and truly bad steps apart, their mean, and the majority-class baseline.)

    python benchmarks/best_of_n.py [-c default] [-s process.solutions_per_problem=1 ...]
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
from tasks.core.store import ArtifactStore  # noqa: E402
from tasks.core.tables import read_rows  # noqa: E402


def step_truths(cfg, rows: list[dict]) -> dict[tuple[str, int], list[bool]]:
    """(problem id, sample index) → the truth of each step, for tiny-arith problems (ids `train-000123`)."""
    from tasks.data.tiny_arith import TinyArithSpec, generate_problem_states
    from tasks.data.tiny_arith_steps import step_truth, valid_paths

    train, test = generate_problem_states(TinyArithSpec(**cfg.data.model_dump()))
    states = {"train": train, "test": test}
    paths: dict[str, set] = {}
    out = {}
    for row in rows:
        split, index = row["prompt_id"].split("-")
        problem = states[split][int(index)]
        paths.setdefault(row["prompt_id"], valid_paths(problem))
        out[(row["prompt_id"], row["sample_index"])] = step_truth(problem, list(row["steps"]), paths[row["prompt_id"]])
    return out


def agreement(pairs: list[tuple[bool, bool]]) -> float | None:
    return sum(a == b for a, b in pairs) / len(pairs) if pairs else None


def per_class(pairs: list[tuple[bool, bool]]) -> dict:
    """Agreement on the truly good and the truly bad steps apart, and what calling every step by the truth's
    majority class would score: when most steps are wrong, "all wrong" agrees often and knows nothing."""
    good = [p for p, t in pairs if t]
    bad = [p for p, t in pairs if not t]
    share = len(good) / len(pairs) if pairs else 0.0
    return {"good_recall": sum(good) / len(good) if good else None,
            "bad_recall": sum(not p for p in bad) / len(bad) if bad else None,
            "balanced": (sum(good) / len(good) + sum(not p for p in bad) / len(bad)) / 2 if good and bad else None,
            "majority_class_baseline": max(share, 1 - share)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-c", "--config", default="default")
    parser.add_argument("-s", "--set", action="append", default=[], help="dotted override of the flow's config")
    args = parser.parse_args()
    from flows.process_reward import ProcessRewardConfig, process_reward

    cfg = load_config(ProcessRewardConfig, "process_reward", args.config, args.set)
    if cfg.dataset is not None:
        raise SystemExit("best_of_n.py checks steps against tiny-arith's known arithmetic: run it without `dataset`")
    started = time.time()
    result = process_reward(cfg)
    store = ArtifactStore(cfg.store)
    curves = store.manifest(result.outputs["best_of_n"])["metrics"]["curves"]
    greedy = store.manifest(result.scores["base"]["pass@1"])["metrics"]
    heldout = result.scores["verifiers"]["PRM held-out steps"]
    steps = read_rows(store, result.outputs["steps"], "steps_train") + read_rows(store, result.outputs["steps"],
                                                                                 "steps_test")
    truth = step_truths(cfg, steps)
    labels_vs_truth = [(h >= 0.5, t) for r in steps for h, t in zip(r["hard"], truth[(r["prompt_id"],
                                                                                      r["sample_index"])])]
    scored = read_rows(store, heldout, "steps_scored")
    prm_vs_truth = [(r["probability"] >= 0.5, truth[(r["prompt_id"], r["sample_index"])][r["step"]]) for r in scored]
    last = curves[-1]
    print(f"{'N':>4} {'PRM':>8} {'ORM':>8} {'majority':>9} {'any':>8}   (greedy {greedy['accuracy']:.1%}, "
          f"{greedy['n']} problems)")
    for c in curves:
        print(f"{c['n']:>4} {c['prm']:>8.1%} {c['orm']:>8.1%} {c['maj']:>9.1%} {c['oracle']:>8.1%}")
    summary = {"n": last["n"], "greedy": greedy["accuracy"], "majority": last["maj"], "orm": last["orm"],
               "prm": last["prm"], "any_correct": last["oracle"], "n_test": last["problems"],
               "ci95": {"greedy": greedy["ci95"], "majority": last["maj_ci95"], "orm": last["orm_ci95"],
                        "prm": last["prm_ci95"]},
               "step_labels_vs_truth": agreement(labels_vs_truth), "n_steps": len(labels_vs_truth),
               "truly_good_steps": sum(t for _, t in labels_vs_truth) / max(1, len(labels_vs_truth)),
               "prm_vs_truth": agreement(prm_vs_truth), "prm_vs_labels": store.manifest(heldout)["metrics"]["accuracy"],
               "n_heldout_steps": len(prm_vs_truth), "labels_by_class": per_class(labels_vs_truth),
               "prm_by_class": per_class(prm_vs_truth), "report": str(result.report_uri), "wall_s": time.time() - started}
    print(f"steps: Math-Shepherd labels agree with the truth on {summary['step_labels_vs_truth']:.1%} of "
          f"{len(labels_vs_truth)}; the PRM on {summary['prm_vs_truth'] or 0:.1%} of {len(prm_vs_truth)} held out")
    for name in ("labels", "prm"):
        c = summary[f"{name}_by_class"]
        print(f"  {name}: truly good steps called good {c['good_recall']}, truly bad called bad {c['bad_recall']}, "
              f"balanced {c['balanced']}; calling all by the majority class: {c['majority_class_baseline']:.1%}")
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
