"""TinyCode: seeded one-line Python functions described in words, with unit tests (HumanEval format).

    prompt      def solve(x):\\n    \"\"\"Return x times 3, plus 2.\"\"\"\\n
    completion      return x * 3 + 2\\n
    test        def check(candidate):\\n    assert candidate(1) == 5\\n    ...

The model must turn the description into an expression; the tests decide. Train and test descriptions are
disjoint. Small enough for a tiny model trained from scratch, real enough for unit-test ranking (RRTF).
"""
from __future__ import annotations

import random

UNARY = [("plus {n}", "{e} + {n}"), ("minus {n}", "{e} - {n}"), ("times {n}", "{e} * {n}")]  # words, code
BINARY = [("the sum of a and b", "a + b"), ("the difference of a and b", "a - b"), ("the product of a and b", "a * b"),
          ("the larger of a and b", "max(a, b)"), ("the smaller of a and b", "min(a, b)")]


def _describe(rng: random.Random, max_constant: int) -> tuple[str, str, int]:
    """(words, expression, arity). Each step applies to everything before it: "x plus 7, times 8" is
    (x + 7) * 8."""
    if rng.random() < 0.4:
        words, expr = rng.choice(BINARY)
        arity, steps = 2, rng.choice([0, 1])
    else:
        words, expr, arity, steps = "x", "x", 1, rng.choice([1, 1, 2])
    for _ in range(steps):
        op_words, op_expr = rng.choice(UNARY)
        n = rng.randint(2, max_constant)
        words = f"{words} {op_words.format(n=n)}" if words == "x" else f"{words}, {op_words.format(n=n)}"
        needs_parens = op_expr.startswith("{e} *") and (" + " in expr or " - " in expr)
        expr = op_expr.format(e=f"({expr})" if needs_parens else expr, n=n)
    return words, expr, arity


def _problem(index: int, words: str, expr: str, arity: int, rng: random.Random, split: str) -> dict:
    args = "x" if arity == 1 else "a, b"
    prompt = f'def solve({args}):\n    """Return {words}."""\n'
    cases = [tuple(rng.randint(-9, 9) for _ in range(arity)) for _ in range(3)]
    env: dict = {}
    exec(f"def solve({args}):\n    return {expr}\n", env)  # our own generated expression, not model output
    asserts = "".join(f"    assert candidate({', '.join(map(str, c))}) == {env['solve'](*c)}\n" for c in cases)
    return {"id": f"{split}-{index:05d}", "prompt": prompt, "completion": f"    return {expr}\n",
            "test": f"def check(candidate):\n{asserts}", "entry_point": "solve", "description": words}


def generate_tiny_code(seed: int, n_train: int, n_test: int, max_constant: int = 9) -> tuple[list[dict], list[dict]]:
    """Disjoint train / test problems (by description), deterministic in `seed`. Constants run 2..max_constant:
    at 9 about 725 distinct problems exist, at 19 about 3200 (enough for ≥ 500 held-out ones, issue 15)."""
    rng = random.Random(seed)
    seen: dict[str, tuple[str, int]] = {}
    attempts = 0
    while len(seen) < n_train + n_test:
        words, expr, arity = _describe(rng, max_constant)
        seen.setdefault(words, (expr, arity))
        attempts += 1
        if attempts > 200 * (n_train + n_test):
            raise ValueError(f"only {len(seen)} distinct tiny-code problems exist with constants up to {max_constant}; "
                             f"asked for {n_train + n_test} (n_train + n_test): raise data.max_constant")
    items = list(seen.items())
    rng.shuffle(items)
    train = [_problem(i, w, e, a, rng, "train") for i, (w, (e, a)) in enumerate(items[:n_train])]
    test = [_problem(i, w, e, a, rng, "test") for i, (w, (e, a)) in enumerate(items[n_train:])]
    return train, test
