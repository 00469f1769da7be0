"""A hard bound per sample: a hanging or crashing sample fails alone, the rest of its chunk is labelled; a label
stage whose share of unjudged samples is over its threshold fails instead of committing."""
from __future__ import annotations

import os
import time

import pytest

from tasks.labelling.label import LabelConfig, LabellingFailed, check_failure_rate, label_chunk
from tasks.labelling.labellers import LabelOptions
from tasks.labelling.watchdog import Crashed, Timeout, map_bounded


def _work(item):
    if item == "hang":
        time.sleep(600)
    if item == "die":
        os._exit(3)
    return item.upper()


def test_a_hanging_and_a_crashing_item_fail_alone():
    started = time.time()
    results = map_bounded(_work, ["a", "hang", "b", "die", "c"], timeout_s=1.0)
    assert results[0] == "A" and results[2] == "B" and results[4] == "C"
    assert results[1] == Timeout(1.0) and isinstance(results[3], Crashed) and "exited with 3" in results[3].reason
    assert time.time() - started < 15


def test_a_math_answer_that_would_compute_for_minutes_times_out_alone():
    """`9^{9^{9}}` makes math-verify build a 370-million-digit integer in C, which no signal interrupts."""
    problem = {"id": "q", "final": "5", "question": "q", "answer": "#### 5"}
    chunk = [(0, "#### 5", problem), (1, "#### 9^{9^{9}}", problem), (2, "#### 4", problem)]
    started = time.time()
    labels = label_chunk(chunk, ["math_answer"], LabelOptions(), sample_timeout_s=3.0)
    assert time.time() - started < 30
    assert labels[0][0]["correct"] and not labels[2][0]["correct"] and labels[2][0]["status"] == "answered"
    assert labels[1][0]["status"] == "label_timeout" and not labels[1][0]["correct"]


def test_the_failure_rate_threshold():
    cfg = LabelConfig(max_failure_rate=0.25)
    rows = [{}] * 4
    ok = {"math_answer": [{"status": "answered"}] * 3 + [{"status": "label_timeout"}]}
    assert check_failure_rate(rows, ok, cfg) == {"label_timeout": 1}
    bad = {"math_answer": [{"status": "answered"}] * 2 + [{"status": "sandbox_error"}, {"status": "chunk_failed"}]}
    with pytest.raises(LabellingFailed, match=r"2 of 4 samples \(50.0%\) could not be judged.*max_failure_rate"):
        check_failure_rate(rows, bad, cfg)
    with pytest.raises(ValueError, match="sample_timeout_s=5.0 must exceed sandbox.wall_seconds=10"):
        LabelConfig(sample_timeout_s=5)
