"""The embedded tiny-code task: disjoint, deterministic splits whose written solutions pass their own tests, and a
clear error when more distinct problems are asked for than the constants allow."""
from __future__ import annotations

import pytest

from tasks.data.tiny_code import generate_tiny_code


def _passes(problem: dict) -> bool:
    env: dict = {}
    exec(problem["prompt"] + problem["completion"] + problem["test"], env)  # our own generated code
    env["check"](env[problem["entry_point"]])
    return True


def test_written_solutions_pass_their_tests_and_splits_are_disjoint():
    train, test = generate_tiny_code(seed=3, n_train=300, n_test=500, max_constant=19)
    assert (len(train), len(test)) == (300, 500)
    assert not {r["description"] for r in train} & {r["description"] for r in test}
    assert all(_passes(p) for p in train[:50] + test[:50])
    assert generate_tiny_code(seed=3, n_train=300, n_test=500, max_constant=19) == (train, test)


def test_constants_stay_within_max_constant():
    train, _ = generate_tiny_code(seed=0, n_train=200, n_test=10, max_constant=5)
    constants = {int(w) for p in train for w in p["description"].replace(",", " ").split() if w.isdigit()}
    assert constants and max(constants) == 5 and min(constants) == 2


def test_asking_for_more_problems_than_exist_names_the_limit():
    # with constants 2..9 about 725 distinct descriptions exist: 150 held-out + 1000 train cannot be drawn
    with pytest.raises(ValueError, match=r"only 7\d\d distinct .* up to 9.*asked for 1150.*max_constant"):
        generate_tiny_code(seed=0, n_train=1000, n_test=150)
    train, test = generate_tiny_code(seed=0, n_train=1000, n_test=150, max_constant=19)
    assert len(train) + len(test) == 1150
