"""The label stage end to end on a local Ray cluster: hostile programs and malformed rows never stop it, several
labellers combine, and a reward model scores on Ray actors."""
from __future__ import annotations

import os

import pytest

from models.reward_model import build_tiny_reward_model, encode_for_reward, rewards_at_eos
from models.tiny_llama import ModelSize, save_model_folder
from models.tokenizer import build_digit_tokenizer
from tasks.labelling.label import LabelConfig, label_rewards
from tasks.core.stage_cache import StageContext
from tasks.core.store import ArtifactStore, StoreSpec
from tasks.core.tables import read_rows

from stored_tables import commit_table

ADD = {"id": "add", "prompt": "def add(a, b):\n    \"\"\"Sum.\"\"\"\n", "entry_point": "add",
       "test": "def check(candidate):\n    assert candidate(2, 3) == 5\n"}
CANARY = "/tmp/winnow-stage-canary"
HOSTILE = {
    "fork_bomb": "    import os\n    while True:\n        os.fork()\n",
    "infinite_loop": "    while True:\n        pass\n",
    "memory_bomb": "    x = [bytearray(64 << 20) for _ in range(100)]\n",
    "os_system": "    import os\n    assert os.system('touch /tmp/winnow-os-system') == 0\n    return a + b\n",
    "socket": "    import socket\n    socket.create_connection(('1.1.1.1', 80), timeout=1)\n    return a + b\n",
    "write_outside": "    open('/tmp/winnow-stage-escape', 'w').write('x')\n    return a + b\n",
    "read_env": "    import os\n    assert os.environ['HOME'] == '/root'\n    return a + b\n",
    "print_1gb": "    import sys\n    for _ in range(1 << 14):\n        sys.stdout.write('x' * 65536)\n",
    "sys_exit": "    import sys\n    sys.exit(0)\n",
    "segfault": "    import ctypes\n    ctypes.string_at(0)\n",
    # a canary the test makes, never a folder that matters should the sandbox ever fail open
    "delete_files": f"    import shutil\n    shutil.rmtree({CANARY!r})\n    return a + b\n",
}


def _sample(pid: str, index: int, text) -> dict:
    return {"prompt_id": pid, "sample_index": index, "model_id": "m", "text": text, "error": None}


@pytest.mark.slow
def test_hostile_programs_and_malformed_rows_get_failure_labels_and_the_stage_completes(ray_local, tmp_path):
    from tasks.labelling.sandbox import SandboxLimits, confinement

    # first, before anything hostile exists: every layer active, none waived (the stage also refuses otherwise)
    assert confinement(SandboxLimits())["weakened"] == []
    store = ArtifactStore(StoreSpec(url=str(tmp_path / "store")))
    os.makedirs(f"{CANARY}/inside", exist_ok=True)
    if os.path.exists("/tmp/winnow-stage-escape"):
        os.remove("/tmp/winnow-stage-escape")
    problems = commit_table(store, "problems", "test", [ADD, {"id": "no-tests", "prompt": "def f():\n"}], tmp_path)
    texts = {"good": "    return a + b\n", **HOSTILE}
    rows = [_sample("add", i, t) for i, t in enumerate(texts.values())]
    rows += [_sample("add", 90, ""), _sample("missing", 91, "    return 1\n"), _sample("no-tests", 92, "  pass\n")]
    samples = commit_table(store, "samples", "samples", rows, tmp_path)
    cfg = LabelConfig(labeller="unit_tests", split="test", chunk_size=3,
                      sandbox={"wall_seconds": 4, "cpu_seconds": 2, "memory_mb": 256, "max_output_kb": 256})
    ctx = StageContext(store=store.spec, show_progress=False)
    labels = read_rows(store, label_rewards.fn("t", samples, problems, cfg, ctx), "labels")
    by_name = dict(zip([*texts, "empty", "missing", "no-tests"], labels))
    assert by_name["good"]["reward"] == 1.0 and by_name["good"]["status"] == "pass"
    for name in [*HOSTILE, "empty", "missing", "no-tests"]:
        assert by_name[name]["reward"] == 0.0 and not by_name[name]["correct"] and by_name[name]["error"], name
    assert by_name["infinite_loop"]["status"] == "timeout"
    assert "empty program" in by_name["empty"]["error"]
    assert "not among the problems" in by_name["missing"]["error"]
    assert "field 'test' is missing" in by_name["no-tests"]["error"]
    assert "called sys.exit" in by_name["sys_exit"]["error"]
    assert os.path.isdir(f"{CANARY}/inside") and not os.path.exists("/tmp/winnow-stage-escape")


@pytest.mark.slow
def test_answer_check_and_reward_model_combine(ray_local, tmp_path):
    store = ArtifactStore(StoreSpec(url=str(tmp_path / "store")))
    problems = [{"id": f"q{i}", "prompt": f"Question: {i} + 1 ?\nAnswer:", "final": str(i + 1)} for i in range(4)]
    texts = [" #### 1", " #### 2", " #### 9", " #### 4"]  # right, right, wrong, right
    tokenizer = build_digit_tokenizer([p["prompt"] + t for p, t in zip(problems, texts)])
    size = ModelSize(hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64, max_positions=64)
    rm = build_tiny_reward_model(size, tokenizer, seed=0).eval()
    save_model_folder(rm, tokenizer, tmp_path / "rm")
    expected = rewards_at_eos(rm, **encode_for_reward(tokenizer, [p["prompt"] + t for p, t in
                                                                  zip(problems, texts)], 64)).tolist()
    problems_ref = commit_table(store, "problems", "test", problems, tmp_path)
    samples = commit_table(store, "samples", "samples", [_sample(f"q{i}", 0, t) for i, t in enumerate(texts)],
                           tmp_path)
    ctx = StageContext(store=store.spec, show_progress=False)
    cfg = LabelConfig(split="test", labellers=[{"name": "math_answer", "weight": 0.5}, {"name": "reward_model",
                      "weight": 2.0}], combine="weighted_sum",
                      reward_model={"model": str(tmp_path / "rm"), "batch_size": 3, "num_scorers": 2})
    labels = read_rows(store, label_rewards.fn("rm", samples, problems_ref, cfg, ctx), "labels")
    assert [r["reward_reward_model"] for r in labels] == pytest.approx(expected, abs=1e-5)
    assert [r["reward_math_answer"] for r in labels] == [1.0, 1.0, 0.0, 1.0]
    assert [r["reward"] for r in labels] == pytest.approx([0.5 * a + 2.0 * m for a, m in
                                                           zip([1, 1, 0, 1], expected)], abs=1e-5)
    assert [r["correct"] for r in labels] == [True, True, False, True]  # the RM does not judge correctness
    threshold = cfg.model_copy(update={"threshold": 0.5 + 2.0 * min(expected) + 1e-6})
    thresholded = read_rows(store, label_rewards.fn("rm-t", samples, problems_ref, threshold, ctx), "labels")
    assert {r["reward"] for r in thresholded} <= {0.0, 1.0}
    assert [r["correct"] for r in thresholded] == [r["reward"] == 1.0 for r in thresholded]


def test_label_config_errors_name_the_field():
    with pytest.raises(ValueError, match="unknown labeller 'nope'"):
        LabelConfig(labeller="nope")
    with pytest.raises(ValueError, match="label.reward_model is required"):
        LabelConfig(labellers=[{"name": "reward_model"}])
    with pytest.raises(ValueError, match="weight applies to combine: weighted_sum"):
        LabelConfig(labellers=[{"name": "math_answer", "weight": 2}])
    with pytest.raises(ValueError, match="unknown 'max'"):
        LabelConfig(combine="max")
    assert LabelConfig(labeller="unit_tests").labellers[0].name == "unit_tests"


@pytest.mark.slow
def test_labels_are_written_through_the_labellers_declared_fields(ray_local, tmp_path):
    """A labeller's own fields land in labels.parquet with their declared types; a field it did not declare
    fails the stage naming the table, the row and the field, and nothing is committed (issue 12, item 3)."""
    import pyarrow as pa

    from tasks.labelling.labellers import BATCH_LABELLERS, LABELLER_FIELDS, register_batch_labeller

    def length_labels(rows, problems, options):
        return [{"reward": 1.0, "correct": True, "pred": None, "status": "scored", "error": None,
                 "n_chars": len(row["text"])} for row in rows]

    register_batch_labeller("test_declared", fields={"n_chars": pa.int64()})(length_labels)
    register_batch_labeller("test_undeclared")(length_labels)
    try:
        _check_declared_fields(tmp_path)
    finally:
        for name in ("test_declared", "test_undeclared"):
            del BATCH_LABELLERS[name], LABELLER_FIELDS[name]


def _check_declared_fields(tmp_path):
    from tasks.core.records import RecordError

    store = ArtifactStore(StoreSpec(url=str(tmp_path / "store")))
    problems = commit_table(store, "problems", "test", [{"id": "a", "prompt": "Q"}], tmp_path)
    samples = commit_table(store, "samples", "samples", [_sample("a", 0, "abc"), _sample("a", 1, "abcdef")], tmp_path)
    ctx = StageContext(store=store.spec, show_progress=False)
    rm = {"model": str(tmp_path)}  # batch labellers need a reward_model section; these read nothing from it
    cfg = LabelConfig(labeller="test_declared", split="test", reward_model=rm)
    labels = read_rows(store, label_rewards.fn("declared", samples, problems, cfg, ctx), "labels")
    assert [r["n_chars"] for r in labels] == [3, 6] and [r["reward_test_declared"] for r in labels] == [1.0, 1.0]
    cfg = LabelConfig(labeller="test_undeclared", split="test", reward_model=rm)
    with pytest.raises(RecordError, match=r"labels\.parquet \(labels of test_undeclared\), row 0: field 'n_chars' "
                                          r"is not declared"):
        label_rewards.fn("undeclared", samples, problems, cfg, ctx)
    assert store.list("label_rewards") and len(store.list("label_rewards")) == 1  # only the first run committed
