"""Unforgeable unit-test verdicts (issue 14, item 2). The model-written function runs in the sandbox; the test
runs here, outside it, on plain data. Running the test in the program's interpreter let a program forge a pass:
return an object whose `__eq__` always answers True, patch `AssertionError` or `builtins`, exit early, or walk
the interpreter's frames to the launcher's "finished" report. Now:

1. the trusted test (the dataset's `check`, with the prompt's helpers) runs in this process with a recording
   stand-in for the candidate, asserts observed but not raised, to learn which calls it makes;
2. the sandbox runs the program and calls the candidate with those arguments, and prints each result in a
   tagged plain-data encoding (None, bool, int, float, str, bytes, list, tuple, dict, set: exact types only;
   anything else is not a result);
3. the test runs again here with a stand-in that replays the decoded results; its asserts decide.

Whatever the program does inside its interpreter, all that crosses the process boundary is bytes that decode to
built-in values, so it can at most choose what the function returns, which is what it is graded on. Calls whose
arguments depend on earlier results are learned over further rounds (at most `MAX_ROUNDS`)."""
from __future__ import annotations

import ast
import json
import random
import uuid
from pathlib import Path
from dataclasses import dataclass

from tasks.labelling import plain_data
from tasks.labelling.plain_data import NotPlainData, decode, encode  # noqa: F401  (re-exported for callers)
from tasks.labelling.sandbox import SandboxLimits, SandboxResult, run_sandboxed

# the codec's own source, shipped into the sandbox as a file: both sides run the same code
_CODEC = Path(plain_data.__file__).read_text()

MAX_ROUNDS = 4


class Pending:
    """What a call not made yet returns while the test is being surveyed: absorbs every operation, so the survey
    goes on to find the calls after it."""

    def __getattr__(self, name):
        return Pending()

    def __call__(self, *a, **k):
        return Pending()

    def __bool__(self):
        return False

    def __iter__(self):
        return iter(())

    def __len__(self):
        return 0

    def __float__(self):
        return 0.0

    def __int__(self):
        return 0

    def __index__(self):
        return 0

    def __hash__(self):
        return 0

    def __getitem__(self, key):
        return Pending()


def _absorb(name):
    return lambda self, *a: Pending()


for _op in ("eq ne lt le gt ge add radd sub rsub mul rmul truediv rtruediv floordiv rfloordiv mod rmod pow rpow "
            "neg pos abs round and rand or ror xor rxor contains").split():
    setattr(Pending, f"__{_op}__", _absorb(_op))


class _Observe(ast.NodeTransformer):
    """`assert x, msg` → `_observe(x)`: during the survey a failed assert must not stop the test."""

    def visit_Assert(self, node):
        return ast.copy_location(ast.Expr(ast.Call(ast.Name("_observe", ast.Load()), [node.test], [])), node)


@dataclass
class Verdict:
    status: str  # pass / fail / error / timeout / sandbox_error ...
    detail: str
    wall_s: float


def _key(args) -> str:
    return json.dumps(encode(list(args)), sort_keys=True)


def _run_test(code_prompt: str, test: str, entry_point: str, candidate, survey: bool) -> None:
    """The dataset's test (trusted) with `candidate` as the function under test, also under its own name (some
    tests call it so). `random` is seeded the same for every run: tests that draw random inputs (HumanEval/53)
    must make the same calls when surveyed and when replayed."""
    source = test if not survey else ast.unparse(ast.fix_missing_locations(_Observe().visit(ast.parse(test))))
    namespace = {"__name__": "winnow_check", "_observe": lambda value: None}
    exec(compile(code_prompt, "prompt", "exec"), namespace)  # the prompt's helpers (trusted dataset text)
    namespace[entry_point] = candidate
    exec(compile(source, "test", "exec"), namespace)
    state = random.getstate()
    random.seed(0)
    try:
        namespace["check"](candidate)
    finally:
        random.setstate(state)


def _harness(entry_point: str, calls: list, marker: str) -> str:
    """The sandbox side: define the program, call the function, print the encoded results after `marker`.
    It writes JSON with the C encoder json.dumps itself uses (`_json`): importing `json` pulls in `re` and cost
    18 of a verdict's ~58 ms here, once per program labelled."""
    return ("import _json\nfrom plain_data import decode as _dec, encode as _enc\n"
            "_ns = {'__name__': 'solution'}\n"
            "exec(compile(open('solution.py').read(), 'solution.py', 'exec'), _ns)\n"
            f"_fn = _ns[{entry_point!r}]\n_out = []\n"
            f"for _args in {_call_literal(calls)}:\n"
            "    try:\n        _out.append(['ok', _enc(_fn(*_args))])\n"
            "    except BaseException as _e:\n        _out.append(['raise', type(_e).__name__])\n"
            "_dump = _json.make_encoder(None, None, _json.encode_basestring_ascii, None, ':', ',', False, False, "
            "False)\n"
            f"print({marker!r} + ''.join(_dump(_out, 0)), flush=True)\n")


def _call_literal(calls: list) -> str:
    # the arguments travel as plain data too, decoded inside the sandbox by its own copy of the decoder; the
    # encoding is lists of str, bool and None, so its ascii() is a Python literal (no parser to import there)
    return f"[_dec(_a) for _a in {ascii([encode(list(c)) for c in calls])}]"


def run_unit_tests(code_prompt: str, completion_code: str, test: str, entry_point: str,
                   limits: SandboxLimits) -> Verdict:
    """Survey the calls, run them sandboxed, replay their plain results into the real test."""
    known: dict[str, list] = {}
    wall = 0.0
    for _ in range(MAX_ROUNDS):
        wanted: dict[str, tuple] = {}

        def survey(*args):
            key = _key(args)
            if key in known:
                return _replay(known[key])
            wanted.setdefault(key, args)
            return Pending()

        try:
            _run_test(code_prompt, test, entry_point, survey, survey=True)
        except Exception:  # the survey may stumble on a Pending: the calls found so far still count
            pass
        if not wanted:
            break
        result, results = _sandbox_calls(code_prompt + completion_code, entry_point, list(wanted.values()), limits)
        wall += result.wall_s
        if results is None:
            return Verdict(result.status if result.status != "ok" else "error", _why(result), wall)
        known.update(zip(wanted, results))
    else:
        return Verdict("error", f"the test's calls still depend on results after {MAX_ROUNDS} rounds", wall)
    return _final(code_prompt, test, entry_point, known, wall)


def _final(code_prompt, test, entry_point, known, wall) -> Verdict:
    def replay(*args):
        key = _key(args)
        if key not in known:
            raise RuntimeError("the test made a call the survey did not see")
        return _replay(known[key])

    try:
        _run_test(code_prompt, test, entry_point, replay, survey=False)
    except AssertionError as exc:
        return Verdict("fail", f"AssertionError: {exc}"[:300], wall)
    except Exception as exc:
        return Verdict("error", f"{type(exc).__name__}: {exc}"[:300], wall)
    return Verdict("pass", "", wall)


def _replay(outcome: list):
    kind, body = outcome
    if kind == "raise":
        why = "called sys.exit before returning" if body == "SystemExit" else f"raised {body}"
        raise _EXCEPTIONS.get(body, RuntimeError)(f"the function {why}")
    return decode(body)


def _sandbox_calls(program: str, entry_point: str, calls: list, limits: SandboxLimits
                   ) -> tuple[SandboxResult, list | None]:
    marker = f"@@winnow-results-{uuid.uuid4().hex}@@"
    whole = limits.model_copy(update={"keep_output_chars": limits.max_output_kb << 10})  # the results line entire
    result = run_sandboxed(_harness(entry_point, calls, marker), whole,
                           files={"solution.py": program, "plain_data.py": _CODEC})
    lines = [line for line in result.stdout.splitlines() if line.startswith(marker)]
    if result.status != "ok" or not lines:
        return result, None
    try:
        outcomes = json.loads(lines[-1][len(marker):])
        if len(outcomes) != len(calls) or any(o[0] not in ("ok", "raise") for o in outcomes):
            raise ValueError("wrong number or kind of results")
        for kind, body in outcomes:
            if kind == "ok":
                decode(body)  # malformed results are the program's error, found here rather than mid-test
    except (ValueError, TypeError, IndexError) as exc:
        return SandboxResult("error", result.returncode, result.stdout, result.stderr, result.wall_s,
                             f"results are not plain data: {exc}"), None
    return result, outcomes


def _why(result: SandboxResult) -> str:
    if result.status == "ok":
        return "the program printed no results (it ended the process, or printed over them)"
    return result.detail


_EXCEPTIONS = {cls.__name__: cls for cls in (ValueError, TypeError, KeyError, IndexError, ZeroDivisionError,
                                             AssertionError, RuntimeError, ArithmeticError, AttributeError,
                                             NotImplementedError, OverflowError, RecursionError, LookupError)}
