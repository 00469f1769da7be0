"""Labelling throughput, measured side by side in one run:

- math answer labels per second on one core: GSM8K reference solutions (integer answers) and MATH-500 reference
  solutions (LaTeX answers through math-verify), each labelled once against its own answer and once against a
  perturbed one (answer+1), so half the labels take the "wrong answer" path;
- sandboxed HumanEval canonical solutions per second on all cores (Ray tasks, one sandbox process per program),
  beside the floor: the same 164 programs run with bare `exec` in this process, one core, no isolation.

    python benchmarks/labeling.py [--repeat 3]

The last line is one JSON object (see the keys at the bottom).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from winnow.env import apply_defaults  # noqa: E402

apply_defaults()

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402


def math_labels_per_s(rows: list[dict], repeat: int) -> float:
    from tasks.labelling.label_math import label_math_answer
    from tasks.labelling.labellers import LabelOptions

    options = LabelOptions()
    jobs = [(r["answer"], r) for r in rows] + [(r["answer"], r | {"final": f"{r['final']}+1"}) for r in rows]
    best = float("inf")
    for _ in range(repeat):
        from tasks.labelling.answers import _parse_answer

        _parse_answer.cache_clear()  # every repeat parses the references again
        start = time.perf_counter()
        for completion, problem in jobs:
            label_math_answer(completion, problem, options)
        best = min(best, time.perf_counter() - start)
    return len(jobs) / best


def exec_floor_per_s(problems: list[dict]) -> tuple[float, int]:
    from tasks.labelling.label_code import unit_test_program

    programs = [compile(unit_test_program(p["completion"], p), p["id"], "exec") for p in problems]
    passed, start = 0, time.perf_counter()
    for code in programs:
        try:
            exec(code, {"__name__": "__main__"})
            passed += 1
        except Exception:
            pass
    return len(programs) / (time.perf_counter() - start), passed


def sandbox_per_s(problems: list[dict], chunk: int) -> tuple[float, int]:
    from ray_cluster.parallel_map import map_chunks
    from tasks.labelling.label import label_chunk
    from tasks.labelling.labellers import LabelOptions

    triples = [(i, p["completion"], p) for i, p in enumerate(problems)]
    chunks = [triples[i: i + chunk] for i in range(0, len(triples), chunk)]
    start = time.perf_counter()
    results = map_chunks(label_chunk, chunks, ["unit_tests"], LabelOptions())
    elapsed = time.perf_counter() - start
    passed = sum(labels[0]["correct"] for result in results if isinstance(result, list) for labels in result)
    return len(problems) / elapsed, passed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3, help="best of N for the math labels")
    parser.add_argument("--chunk", type=int, default=8, help="programs per Ray task")
    parser.add_argument("--limit", type=int, help="only the first N rows of each set (a quick check)")
    args = parser.parse_args()

    import ray

    from ray_cluster.connect import RayConfig, ensure_ray, shutdown_ray
    from tasks.data.gsm8k import read_gsm8k
    from tasks.data.humaneval import read_humaneval
    from tasks.data.math500 import read_math500
    from tasks.labelling.sandbox import sandbox_capabilities

    gsm8k, math500, humaneval = (rows[: args.limit]
                                 for rows in (read_gsm8k("test"), read_math500(), read_humaneval()))
    gsm8k_rate = math_labels_per_s(gsm8k, args.repeat)
    math_rate = math_labels_per_s(math500, args.repeat)
    mixed_rate = (2 * len(gsm8k) + 2 * len(math500)) / (2 * len(gsm8k) / gsm8k_rate + 2 * len(math500) / math_rate)
    floor_rate, floor_passed = exec_floor_per_s(humaneval)
    ensure_ray(RayConfig())
    cores = int(ray.cluster_resources().get("CPU", 1))
    sandbox_per_s(humaneval[: min(16, len(humaneval))], args.chunk)  # warm the Ray workers (imports), not timed
    sandbox_rate, passed = sandbox_per_s(humaneval, args.chunk)

    shutdown_ray()  # Ray's last log lines must not land after the JSON line
    table = Table(title=f"labelling throughput ({cores} cores; sandbox layers: {sandbox_capabilities()})")
    for column in ("what", "rate", "note"):
        table.add_column(column)
    table.add_row("math labels, GSM8K", f"{gsm8k_rate:,.0f}/s/core", f"{2 * len(gsm8k)} labels, half wrong")
    table.add_row("math labels, MATH-500", f"{math_rate:,.0f}/s/core", f"{2 * len(math500)} labels, half wrong")
    table.add_row("math labels, both", f"{mixed_rate:,.0f}/s/core", "harmonic mix by count")
    total = len(humaneval)
    table.add_row("HumanEval sandboxed", f"{sandbox_rate:.1f}/s", f"{passed}/{total} canonical passed, {cores} cores")
    table.add_row("HumanEval bare exec (floor)", f"{floor_rate:.1f}/s", f"{floor_passed}/{total}, 1 core, no isolation")
    table.add_row("sandbox / floor", f"{sandbox_rate / floor_rate:.3f}", "")
    Console().print(table)
    print(json.dumps({"math_labels_per_s_per_core": round(mixed_rate, 1), "gsm8k_labels_per_s_per_core":
                      round(gsm8k_rate, 1), "math500_labels_per_s_per_core": round(math_rate, 1),
                      "sandbox_programs_per_s": round(sandbox_rate, 2), "exec_floor_programs_per_s":
                      round(floor_rate, 2), "humaneval_canonical_passed": passed, "exec_floor_passed": floor_passed,
                      "humaneval_total": len(humaneval), "cores": cores}))


if __name__ == "__main__":
    main()
