"""GSM8K's calculator: the result inside each `<<a*b=c>>` annotation is computed, not sampled.

Cobbe et al. 2021 wrote GSM8K's solutions with these annotations so that a calculator can fill in results
during decoding: the model chooses *what* to compute, the calculator does the arithmetic. Here generation stops
at `>>`; the text after the annotation's `=` is replaced by the exact result of the expression before it, and
the sample resumes (one more request, its prompt + text so far, its own seed and remaining token budget).
Works with any backend behind the GenerationBackend protocol: it only calls `generate`.
"""
from __future__ import annotations

import ast
import re
from fractions import Fraction

from ray_cluster.generation import CompletionRecord, GenerationBackend, PromptRecord, SamplingSpec

CALL_END = ">>"
_ARITHMETIC = re.compile(r"[\d+\-*/(). ]{1,80}")  # digits, + - * / ( ) . and spaces; nothing else runs
_OPS = {ast.Add: Fraction.__add__, ast.Sub: Fraction.__sub__, ast.Mult: Fraction.__mul__,
        ast.Div: Fraction.__truediv__}


def _value(node: ast.AST) -> Fraction:
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
        return Fraction(str(node.value))
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        inner = _value(node.operand)
        return -inner if isinstance(node.op, ast.USub) else inner
    if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
        return _OPS[type(node.op)](_value(node.left), _value(node.right))
    raise ValueError(f"not arithmetic: {ast.dump(node)[:40]}")


def calc_result(expr: str) -> str | None:
    """The exact value of an arithmetic expression as GSM8K writes it (`12`, `2.5`, `-3`), or None when the
    text is not plain arithmetic or divides by zero. Parsed, never `eval`ed: the text is model output."""
    expr = expr.replace(",", "").strip()
    if not _ARITHMETIC.fullmatch(expr):
        return None
    try:
        value = _value(ast.parse(expr, mode="eval").body)
    except (SyntaxError, ValueError, ZeroDivisionError, RecursionError):
        return None
    if value.denominator == 1:
        return str(value.numerator)
    return f"{float(value):.6f}".rstrip("0").rstrip(".")


def close_annotation(text: str) -> str:
    """`text` stopped just before `>>`: put the calculator's result after the open annotation's `=` and close
    it. Text without an open `<<expr=` (or with an expression the calculator cannot read) is closed as is."""
    start = text.rfind("<<")
    if start < 0 or text.rfind(CALL_END) > start:
        return text + CALL_END
    expr, equals, _ = text[start + 2:].partition("=")
    result = calc_result(expr) if equals else None
    if result is None:
        return text + CALL_END
    return f"{text[: start + 2]}{expr}={result}{CALL_END}"


def _merge(done: CompletionRecord, more: CompletionRecord) -> CompletionRecord:
    """One sample from its text so far (`done`, annotation closed) and the round that continued it."""
    logprob = (done.cumulative_logprob + more.cumulative_logprob
               if done.cumulative_logprob is not None and more.cumulative_logprob is not None else None)
    # A continuation that no longer fits the context has run out of room: that is truncation, not an error.
    finish = "length" if more.finish_reason == "error" else more.finish_reason
    return done.model_copy(update={
        "text": done.text + more.text, "completion_tokens": done.completion_tokens + more.completion_tokens,
        "finish_reason": finish, "stop_reason": more.stop_reason, "gen_s": done.gen_s + more.gen_s,
        "cumulative_logprob": logprob})


def generate_with_calculator(backend: GenerationBackend, prompts: list[PromptRecord], sampling: SamplingSpec,
                             max_calls: int = 32) -> list[CompletionRecord]:
    """`backend.generate(prompts, sampling)` with calculator annotations filled in; same records, same order.

    Token counts and log-probabilities add up over a sample's rounds (the replaced result tokens included:
    the engine generated them); `max_tokens` bounds a sample's tokens over all its rounds.
    """
    stops = [*sampling.stop, CALL_END]
    records = backend.generate(prompts, sampling.model_copy(update={"stop": stops}))
    samples = {(r.prompt_id, r.sample_index): r for r in records}
    prompt_of = {p.prompt_id: p for p in prompts}
    pending = [key for key, r in samples.items() if r.stop_reason == CALL_END]
    for call in range(1, max_calls + 1):
        requests, keys = [], []
        for key in pending:
            record = samples[key]
            closed = record.model_copy(update={"text": close_annotation(record.text)})
            samples[key] = closed
            left = sampling.max_tokens - closed.completion_tokens
            if left <= 0:
                samples[key] = closed.model_copy(update={"finish_reason": "length", "stop_reason": None})
                continue
            # Its own id gives each sample its own seed: samples of one prompt must not continue in lockstep.
            requests.append(prompt_of[key[0]].model_copy(update={
                "prompt_id": f"{key[0]}#{key[1]}@{call}", "continuation": closed.text, "max_tokens": left}))
            keys.append(key)
        if not requests:
            break
        more = backend.generate(requests, sampling.model_copy(update={"n": 1, "stop": stops}))
        pending = []
        for key, record in zip(keys, more):
            samples[key] = _merge(samples[key], record)
            if record.stop_reason == CALL_END:
                pending.append(key)
    for key in pending:  # still calling the calculator after max_calls rounds: cut off there
        samples[key] = samples[key].model_copy(update={"finish_reason": "length", "stop_reason": None})
    return [samples[(r.prompt_id, r.sample_index)] for r in records]


def generate_records(backend: GenerationBackend, prompts: list[PromptRecord], sampling: SamplingSpec
                     ) -> list[CompletionRecord]:
    """What every caller of a backend uses: through the calculator when `sampling.calculator` asks for it."""
    if sampling.calculator:
        return generate_with_calculator(backend, prompts, sampling)
    return backend.generate(prompts, sampling)
