"""The GSM8K calculator: exact arithmetic on model text, and the stop / fill in / resume loop around a backend."""
from __future__ import annotations

import pytest

from ray_cluster.calculator import calc_result, close_annotation, generate_with_calculator
from ray_cluster.generation import CompletionRecord, PromptRecord, SamplingSpec, cut_at_stop


@pytest.mark.parametrize("expr, value", [
    ("3*4", "12"), ("12+5", "17"), ("20-25", "-5"), ("7/2", "3.5"), ("10/4*2", "5"), ("1,000+1", "1001"),
    (" (2+3)*4 ", "20"), ("1/3", "0.333333"), ("-3+1", "-2"), ("2.5*2", "5"),
])
def test_calc_result_is_exact_arithmetic(expr, value):
    assert calc_result(expr) == value


@pytest.mark.parametrize("expr", ["", "3*", "4/0", "2**8", "__import__('os')", "a+1", "3 4", "9" * 90])
def test_calc_result_refuses_what_is_not_plain_arithmetic(expr):
    assert calc_result(expr) is None


def test_close_annotation_replaces_the_sampled_result():
    assert close_annotation(" The bags hold 3*4 = <<3*4=11") == " The bags hold 3*4 = <<3*4=12>>"
    assert close_annotation("<<3*4=") == "<<3*4=12>>"
    # nothing to compute: closed as written
    assert close_annotation("<<3*x=7") == "<<3*x=7>>"
    assert close_annotation("a >") == "a >>>"
    assert close_annotation("<<1+1=2>>2 then <<oops") == "<<1+1=2>>2 then <<oops>>"


class ScriptedBackend:
    """A GenerationBackend whose 'model' writes fixed text: a wrong product, then (after the calculator)
    copies the result it sees and ends. Records every request so the loop's requests can be checked."""

    def __init__(self):
        self.calls: list[tuple[list[PromptRecord], SamplingSpec]] = []

    def generate(self, prompts, sampling):
        self.calls.append((prompts, sampling))
        out = []
        for p in prompts:
            for k in range(sampling.n):
                if not p.continuation:
                    full = " 3*4 = <<3*4=11>>11 more"
                else:
                    result = p.continuation.split("=")[-1].rstrip(">")
                    full = f"{result}\n#### {result}"
                text, hit = cut_at_stop(full, sampling.stop)
                tokens = len(text.split()) + (1 if hit else 0)
                out.append(CompletionRecord(prompt_id=p.prompt_id, sample_index=k, model_id="m", text=text,
                                            prompt_tokens=5, completion_tokens=tokens, finish_reason="stop",
                                            stop_reason=hit, gen_s=0.5, cumulative_logprob=-1.0))
        return out

    def close(self):
        pass


def test_generate_with_calculator_fills_in_results_and_resumes_each_sample():
    backend = ScriptedBackend()
    prompts = [PromptRecord(prompt_id="a", text="Q1"), PromptRecord(prompt_id="b", text="Q2")]
    sampling = SamplingSpec(n=2, temperature=1.0, max_tokens=50, logprobs=True)
    records = generate_with_calculator(backend, prompts, sampling)

    assert [(r.prompt_id, r.sample_index) for r in records] == [("a", 0), ("a", 1), ("b", 0), ("b", 1)]
    assert all(r.text == " 3*4 = <<3*4=12>>12\n#### 12" for r in records)
    assert all(r.finish_reason == "stop" and r.stop_reason is None for r in records)
    # tokens, time and log-probabilities add up over the two rounds
    assert records[0].completion_tokens == 4 + 3 and records[0].gen_s == 1.0 and records[0].cumulative_logprob == -2
    first, resumed = backend.calls
    assert first[1].stop == [">>"] and first[1].n == 2
    # each sample resumes alone, with its own id (so its own seed) and the rest of its token budget
    assert resumed[1].n == 1
    assert len({p.prompt_id for p in resumed[0]}) == 4
    assert {p.continuation for p in resumed[0]} == {" 3*4 = <<3*4=12>>"}
    assert {p.max_tokens for p in resumed[0]} == {50 - 4}


def test_calculator_rounds_stop_at_the_token_budget():
    backend = ScriptedBackend()
    sampling = SamplingSpec(n=1, temperature=0.0, max_tokens=4)
    [record] = generate_with_calculator(backend, [PromptRecord(prompt_id="a", text="Q")], sampling)
    assert record.finish_reason == "length" and record.text == " 3*4 = <<3*4=12>>"
    assert len(backend.calls) == 1  # no budget left for a second round


def test_generate_records_uses_the_calculator_only_when_asked():
    from ray_cluster.calculator import generate_records

    prompt = [PromptRecord(prompt_id="a", text="Q")]
    plain = generate_records(ScriptedBackend(), prompt, SamplingSpec(n=1, max_tokens=50))
    calc = generate_records(ScriptedBackend(), prompt, SamplingSpec(n=1, max_tokens=50, calculator=True))
    assert plain[0].text == " 3*4 = <<3*4=11>>11 more" and calc[0].text == " 3*4 = <<3*4=12>>12\n#### 12"
