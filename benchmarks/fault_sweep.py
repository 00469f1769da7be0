"""Fault injection (issue 14): kill the RFT smoke flow with SIGKILL at a random point inside each stage in turn,
rerun it, and check that the rerun finishes, reports exactly what an uninterrupted run reports, and leaves a
store that verifies.

A reference store holds one finished, uninterrupted run (`--seed-store`, or one run here first). For each stage
S, a copy of it loses S's artifacts and everything downstream of them (by the manifests' inputs), so the next run
computes S again; the flow runs as `winnow run` in its own session; when S's lease appears (S is computing) the
sweep waits a seeded random fraction of S's reference wall time and kills the run's whole process group and its
Ray processes (a crashed node, not a polite stop). The same command then runs to the end. Compared with the
reference: the report's accuracy, label and rejection-sampling sections (timings are not compared), and
`winnow store verify` on the store. Prints a line per kill, then, last, one JSON line:
{"kills", "recovered", "identical_reports", "verify_clean", ...} — recovered = identical = kills is the goal.

    python benchmarks/fault_sweep.py [--seed 0] [--stages train_sft,label_rewards] [--pick 1] [--seed-store DIR]
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tasks.core.catalog import ancestors  # noqa: E402
from tasks.core.store import ArtifactStore, StoreSpec  # noqa: E402
from tasks.core.store_maintenance import collect_garbage, verify  # noqa: E402
from winnow.env import apply_defaults  # noqa: E402

apply_defaults()

STAGES = ["make_tiny_arith", "build_tokenizer", "train_sft", "sample_completions", "label_rewards",
          "select_samples", "score_accuracy", "write_report"]
COMPARED = ("accuracy", "Labels", "Rejection sampling")  # what a run reports, without its timings


def start_flow(store: Path, ray_tmp: Path, log: Path, config: str) -> subprocess.Popen:
    """The flow as a user starts it, in a session of its own (so the kill can take the whole group), with Ray's
    processes under a temp dir of its own (so strays outside the group can be found by it)."""
    cmd = [sys.executable, "-m", "winnow.cli", "run", "rft", "-c", config, "-s", f"store.url={store}"]
    return subprocess.Popen(cmd, cwd=ROOT, env=os.environ | {"RAY_TMPDIR": str(ray_tmp)}, stdout=open(log, "ab"),
                            stderr=subprocess.STDOUT, start_new_session=True)


def kill_run(proc: subprocess.Popen, ray_tmp: Path) -> int:
    """SIGKILL the run's process group and every process that names its Ray temp dir; how many strays there were."""
    import psutil

    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(timeout=60)
    strays = [p for p in psutil.process_iter(["cmdline"]) if str(ray_tmp) in " ".join(p.info["cmdline"] or [])]
    for stray in strays:
        try:
            stray.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(strays, timeout=30)
    return len(strays)


def downstream(store: ArtifactStore, stage: str) -> list[tuple[str, str]]:
    """(stage, key) of every artifact of `stage` and of everything computed from one of them."""
    return sorted((m["stage"], m["key"]) for m in store.list()
                  if m["stage"] == stage or any(s == stage for s, _ in ancestors(store, m["stage"], m["key"])))


def report_of(store: ArtifactStore) -> dict:
    newest = store.list("write_report")[-1]
    summary = json.loads((store.local_path(store.lookup("write_report", newest["key"])) / "summary.json").read_text())
    return {name: summary.get(name) for name in COMPARED}


def lease_held(store_dir: Path, stage: str) -> bool:
    return any((store_dir / "artifacts" / stage).glob("*/lease.json"))


def one_kill(stage: str, reference: Path, work: Path, rng: random.Random, config: str, expected: dict) -> dict:
    store_dir = work / stage / "store"
    shutil.copytree(reference, store_dir)
    store = ArtifactStore(StoreSpec(url=str(store_dir)))
    dropped = downstream(store, stage)
    walls = [m["timings"]["wall_s"] for m in store.list(stage)]
    for s, key in dropped:
        shutil.rmtree(store_dir / "artifacts" / s / key)
    ray_tmp = Path(tempfile.mkdtemp(prefix="fs-", dir="/tmp"))  # Ray's socket paths must stay short
    log = work / stage / "run.log"
    # inside the shortest instance of the stage; one under a second is killed as soon as its lease is seen (the
    # lease is taken before the work starts and dropped after the commit, so that is inside it)
    delay = rng.uniform(0.0, 0.9) * min(walls) if min(walls) >= 1.0 else 0.0
    proc, deadline = start_flow(store_dir, ray_tmp, log, config), time.time() + 900
    while not lease_held(store_dir, stage) and proc.poll() is None and time.time() < deadline:
        time.sleep(0.005)
    started = lease_held(store_dir, stage)
    time.sleep(delay)
    inside = lease_held(store_dir, stage)
    strays = kill_run(proc, ray_tmp)
    rerun = start_flow(store_dir, ray_tmp, log, config)
    try:
        rc = rerun.wait(timeout=1800)
    finally:
        kill_run(rerun, ray_tmp)
        shutil.rmtree(ray_tmp, ignore_errors=True)
    identical = rc == 0 and report_of(store) == expected
    bad = [f for f in verify(store) if f.problem]
    garbage = collect_garbage(store, dry_run=True, grace_s=0)
    return {"stage": stage, "dropped": len(dropped), "delay_s": round(delay, 2), "killed_inside": started and inside,
            "strays_killed": strays, "recovered": rc == 0, "identical_report": identical,
            "verify_clean": not bad, "bad_artifacts": [f"{f.stage}/{f.key[:12]}: {f.problem}" for f in bad],
            "garbage_left": len(garbage.paths), "log": str(log)}


def reference_store(seed_store: Path | None, work: Path, config: str) -> Path:
    if seed_store is not None:
        return seed_store
    ref, ray_tmp = work / "reference", Path(tempfile.mkdtemp(prefix="fs-", dir="/tmp"))
    proc = start_flow(ref, ray_tmp, work / "reference.log", config)
    try:
        if proc.wait(timeout=1800) != 0:
            raise SystemExit(f"the reference run failed: {(work / 'reference.log').read_text()[-3000:]}")
    finally:
        kill_run(proc, ray_tmp)
    return ref


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="smoke", help="an rft config (the sweep is sized for `smoke`)")
    parser.add_argument("--stages", default=",".join(STAGES), help="comma-separated; each is killed once")
    parser.add_argument("--pick", type=int, default=0, help="kill only this many stages, drawn with --seed")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--seed-store", type=Path, help="a finished uninterrupted run of the config (else one runs)")
    parser.add_argument("--work", type=Path, help="where the store copies and logs go (default: a temp dir)")
    args = parser.parse_args()

    rng = random.Random(args.seed)
    stages = [s for s in args.stages.split(",") if s]
    unknown = sorted(set(stages) - set(STAGES))
    if unknown:
        raise SystemExit(f"--stages: unknown {unknown}; the RFT flow's stages are {STAGES}")
    if args.pick:
        stages = rng.sample(stages, args.pick)
    work = args.work or Path(tempfile.mkdtemp(prefix="winnow-fault-sweep-"))
    work.mkdir(parents=True, exist_ok=True)
    reference = reference_store(args.seed_store, work, args.config)
    expected = report_of(ArtifactStore(StoreSpec(url=str(reference))))
    results = []
    for stage in stages:
        started = time.time()
        result = one_kill(stage, reference, work, rng, args.config, expected)
        result["wall_s"] = round(time.time() - started, 1)
        print(json.dumps(result), flush=True)
        results.append(result)
    print(json.dumps({"kills": len(results), "recovered": sum(r["recovered"] for r in results),
                      "identical_reports": sum(r["identical_report"] for r in results),
                      "verify_clean": all(r["verify_clean"] for r in results),
                      "killed_inside_stage": sum(r["killed_inside"] for r in results),
                      "stages": [r["stage"] for r in results], "seed": args.seed}))


if __name__ == "__main__":
    main()
