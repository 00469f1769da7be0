import random
import re
import statistics
from dataclasses import replace

import pytest

import tasks.data.tiny_arith as tiny_arith
from tasks.labelling.answers import extract_calc_path
from tasks.data.tiny_arith import (
    TinyArithSpec,
    generate_problem_states,
    generate_problems,
    to_completion,
    to_prompt,
    write_solution,
)

SPEC = TinyArithSpec(seed=7, n_train=400, n_test=100, max_operand=12, max_value=99,
                     distractor_prob=0.5, shuffle_order_prob=0.5)
ANNOTATION = re.compile(r"(\d+)([+\-*/])(\d+) = <<(\d+)([+\-*/])(\d+)=(\d+)>>(\d+)")


@pytest.fixture(scope="module")
def rows() -> tuple[list[dict], list[dict]]:
    return generate_problems(SPEC)


def _apply(a: int, op: str, b: int) -> int:
    if op == "/":
        assert b != 0 and a % b == 0, f"inexact division {a}/{b}"
        return a // b
    return {"+": a + b, "-": a - b, "*": a * b}[op]


def test_same_spec_same_output(rows):
    assert generate_problems(SPEC) == rows


def test_different_seeds_differ(rows):
    other_train, _ = generate_problems(replace(SPEC, seed=8))
    assert [r["question"] for r in other_train] != [r["question"] for r in rows[0]]


def test_row_keys_ids_and_counts(rows):
    train, test = rows
    assert len(train) == SPEC.n_train and len(test) == SPEC.n_test
    assert train[3]["id"] == "train-000003" and test[0]["id"] == "test-000000"
    for row in train + test:
        assert set(row) == {"id", "question", "answer", "final", "n_steps"}
        assert SPEC.min_steps <= row["n_steps"] <= SPEC.max_steps


def test_gsm8k_format_and_arithmetic(rows):
    for row in rows[0] + rows[1]:
        *steps, last = row["answer"].split("\n")
        assert last == f"#### {row['final']}"
        assert len(steps) >= row["n_steps"]
        values = []
        for line in steps:
            match = ANNOTATION.search(line)
            assert match, f"no calculator annotation in {line!r}"
            a, op, b, a2, op2, b2, c, shown = match.groups()
            assert (a, op, b) == (a2, op2, b2) and c == shown
            assert _apply(int(a), op, int(b)) == int(c)
            values += [int(a), int(b), int(c)]
        assert values[-1] == int(row["final"])
        assert all(0 <= v <= SPEC.max_value for v in values)


def test_splits_disjoint_and_unique(rows):
    train_q = [r["question"] for r in rows[0]]
    test_q = [r["question"] for r in rows[1]]
    assert len(set(train_q)) == len(train_q) and len(set(test_q)) == len(test_q)
    assert not set(train_q) & set(test_q)


def test_small_vocabulary(rows):
    words = {w for r in rows[0] + rows[1] for w in re.findall(r"[A-Za-z]+", r["question"] + r["answer"])}
    assert len(words) < 300


def test_written_orders_vary_in_dataset(rows):
    train_states, _ = generate_problem_states(SPEC)
    canonical = [extract_calc_path(write_solution(p, random.Random(0), 0.0)) for p in train_states]
    written = [extract_calc_path(r["answer"]) for r in rows[0]]
    differing = sum(c != w for c, w in zip(canonical, written))
    assert 0.1 * len(written) < differing < len(written)


def test_resampling_gives_distinct_valid_paths():
    states, _ = generate_problem_states(replace(SPEC, n_train=50, n_test=0))
    rng = random.Random(0)
    counts = []
    for problem in states:
        solutions = [write_solution(problem, rng, 0.5) for _ in range(20)]
        assert all(s.endswith(f"#### {problem.final}") for s in solutions)
        counts.append(len({extract_calc_path(s) for s in solutions}))
    assert statistics.mean(counts) > 2


def test_no_shuffle_gives_one_path():
    states, _ = generate_problem_states(replace(SPEC, n_train=30, n_test=0))
    rng = random.Random(0)
    for problem in states:
        assert len({extract_calc_path(write_solution(problem, rng, 0.0)) for _ in range(5)}) == 1


def test_exhausted_space_raises(monkeypatch):
    few = generate_problem_states(replace(SPEC, n_train=3, n_test=0))[0]
    monkeypatch.setattr(tiny_arith, "sample_problem", lambda spec, rng: rng.choice(few))
    with pytest.raises(ValueError, match="distinct questions"):
        generate_problems(replace(SPEC, n_train=5, n_test=2))


def test_invalid_spec_rejected():
    with pytest.raises(ValueError):
        replace(SPEC, min_steps=4, max_steps=2)
    with pytest.raises(ValueError):
        replace(SPEC, shuffle_order_prob=1.5)


def test_prompt_format():
    assert to_prompt("How many?") == "Question: How many?\nAnswer:"
    assert to_prompt("Q") + to_completion("x\n#### 1") == "Question: Q\nAnswer: x\n#### 1"
