"""Generation backends and the engine pool on a tiny random model (CPU)."""
from __future__ import annotations

from pathlib import Path

import pytest

from models.tiny_llama import ModelSize, build_tiny_llama, save_model_folder
from models.tokenizer import build_digit_tokenizer
from ray_cluster.engine_pool import PoolResources, run_shards
from ray_cluster.folders import RemoteFolder
from ray_cluster.backends import open_backend
from ray_cluster.generation import EngineSpec, PromptRecord, SamplingSpec

TEXTS = [f"Question: Tom has {i} apples. He buys {i + 2} more.\nAnswer: Adding gives {i}+{i + 2} = "
         f"<<{i}+{i + 2}={2 * i + 2}>>{2 * i + 2}.\n#### {2 * i + 2}" for i in range(30)]


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("model")
    tokenizer = build_digit_tokenizer(TEXTS)
    model = build_tiny_llama(ModelSize(hidden_size=64, num_layers=2, num_heads=2, intermediate_size=128), tokenizer, 0)  # vLLM CPU needs head_dim>=32
    save_model_folder(model, tokenizer, folder)
    return folder


def _prompts(n: int) -> list[PromptRecord]:
    return [PromptRecord(prompt_id=f"p{i}", text=f"Question: Tom has {i} apples.\nAnswer:") for i in range(n)]


def test_hf_backend_returns_n_records_per_prompt(tiny_model):
    backend = open_backend(tiny_model, "tiny", EngineSpec(backend="hf", batch_size=3), threads=1)
    records = backend.generate(_prompts(5), SamplingSpec(n=2, temperature=1.0, max_tokens=8))
    assert [(r.prompt_id, r.sample_index) for r in records] == [(f"p{i}", k) for i in range(5) for k in range(2)]
    for r in records:
        assert r.model_id == "tiny" and 1 <= r.completion_tokens <= 8 and r.prompt_tokens > 5  # EOS counts
        assert r.finish_reason in {"stop", "length"}
        assert r.finish_reason == "stop" or r.completion_tokens == 8


def test_hf_greedy_is_deterministic_and_independent_of_batching(tiny_model):
    spec = SamplingSpec(n=1, temperature=0.0, max_tokens=10)
    one = open_backend(tiny_model, "t", EngineSpec(backend="hf", batch_size=1), 1).generate(_prompts(4), spec)
    four = open_backend(tiny_model, "t", EngineSpec(backend="hf", batch_size=4), 1).generate(_prompts(4), spec)
    assert [r.text for r in one] == [r.text for r in four]


@pytest.mark.slow
def test_vllm_and_hf_agree_on_greedy_text(tiny_model):
    """The two backends are interchangeable: same prompt tokens, same model, same greedy continuation."""
    spec = SamplingSpec(n=1, temperature=0.0, max_tokens=12)
    hf = open_backend(tiny_model, "t", EngineSpec(backend="hf"), 2).generate(_prompts(6), spec)
    vllm = open_backend(tiny_model, "t", EngineSpec(backend="vllm"), 2)
    try:
        fast = vllm.generate(_prompts(6), spec)
    finally:
        vllm.close()
    assert [r.text for r in fast] == [r.text for r in hf]
    assert [r.completion_tokens for r in fast] == [r.completion_tokens for r in hf]


def test_engine_pool_runs_every_shard_once(tiny_model, ray_local):
    shards = {i: _prompts(7)[i * 2: i * 2 + 2] for i in range(4)}
    done: dict[int, list] = {}
    run_shards(RemoteFolder(uri=str(tiny_model)), "tiny", EngineSpec(backend="hf"),
               PoolResources(num_engines=2, cpus_per_engine=1), shards,
               SamplingSpec(n=3, temperature=1.0, max_tokens=6), lambda sid, recs: done.setdefault(sid, recs))
    assert sorted(done) == [0, 1, 2, 3]
    rows = [(r.prompt_id, r.sample_index) for recs in done.values() for r in recs]
    assert sorted(rows) == sorted((f"p{i}", k) for i in range(7) for k in range(3))


@pytest.mark.slow
def test_vllm_samples_depend_only_on_prompt_and_seed(tiny_model):
    """Per-prompt seeds: a prompt sampled inside a big batch (more prompt tokens than one prefill step takes)
    gives the same samples as alone, which is what makes a resumed stage equal to an uninterrupted one."""
    prompts = [PromptRecord(prompt_id=f"p{i}", text=f"Question: Tom has {i} apples and {i + 1} pears. " * 4)
               for i in range(400)]  # ~20k prompt tokens: more than one step's token budget
    spec = SamplingSpec(n=2, temperature=1.0, max_tokens=8, seed=7)
    engine = open_backend(tiny_model, "t", EngineSpec(backend="vllm"), 2)
    try:
        batch = engine.generate(prompts, spec)
        alone = engine.generate([prompts[123]], spec)
        other_seed = engine.generate([prompts[123]], spec.model_copy(update={"seed": 8}))
    finally:
        engine.close()
    in_batch = [r.text for r in batch if r.prompt_id == "p123"]
    assert in_batch == [r.text for r in alone]
    assert in_batch != [r.text for r in other_seed]


def test_prompt_budget_and_continuation_are_honoured(tiny_model):
    backend = open_backend(tiny_model, "t", EngineSpec(backend="hf", batch_size=4), threads=1)
    plain, short, resumed = _prompts(3)
    short = short.model_copy(update={"max_tokens": 3})
    resumed = resumed.model_copy(update={"continuation": " Adding gives 2+4 ="})
    records = backend.generate([plain, short, resumed], SamplingSpec(n=1, temperature=0.0, max_tokens=8,
                                                                       ignore_eos=True))
    assert [r.completion_tokens for r in records] == [8, 3, 8]
    assert all(r.finish_reason == "length" for r in records)
    extra = len(backend.tokenizer.encode(" Adding gives 2+4 =", add_special_tokens=False))
    assert records[2].prompt_tokens == records[0].prompt_tokens + extra


@pytest.fixture(scope="module")
def trained_model(tmp_path_factory, tiny_model) -> Path:
    """The tiny model after a few seconds of SFT on TEXTS: it writes `Adding gives a+b = <<a+b=` itself."""
    import torch

    from models.sft_data import tokenize_pair
    from models.optim import OptimConfig
    from models.sft_train import run_sft
    from models.tiny_llama import load_model_folder

    model, tokenizer = load_model_folder(tiny_model)
    examples = [tokenize_pair(tokenizer, p + "Answer:", c, 128) for p, c in (t.split("Answer:") for t in TEXTS)]
    run_sft(model, examples, OptimConfig(steps=150, batch_size=10, lr=1e-2, warmup_steps=5), tokenizer.pad_token_id,
            torch.device("cpu"))
    folder = tmp_path_factory.mktemp("trained")
    save_model_folder(model, tokenizer, folder)
    return folder


@pytest.mark.parametrize("backend", ["hf", pytest.param("vllm", marks=pytest.mark.slow)])
def test_calculator_writes_every_annotation_result(trained_model, backend):
    from ray_cluster.calculator import generate_with_calculator
    from tasks.labelling.answers import extract_calc_path
    from tasks.selection.select import CRITERIA

    engine = open_backend(trained_model, "t", EngineSpec(backend=backend, batch_size=8), threads=2)
    prompts = [PromptRecord(prompt_id=f"q{i}", text=f"Question: Tom has {i} apples. He buys {i + 2} more.\nAnswer:")
               for i in range(30, 38)]  # unseen numbers: the model's own arithmetic is not to be trusted
    try:
        records = generate_with_calculator(engine, prompts, SamplingSpec(n=2, temperature=1.0, max_tokens=40))
    finally:
        engine.close()
    from ray_cluster.calculator import calc_result

    # an annotation the model garbled (`<<1+252>>`, `<<5+=?0>>`) asks the calculator nothing; judge the rest
    rows = [{"calc_path": [eq for eq in extract_calc_path(r.text)
                           if "=" in eq and calc_result(eq.rpartition("=")[0]) is not None]} for r in records]
    assert sum(bool(row["calc_path"]) for row in rows) >= len(rows) // 2  # the model did call the calculator
    assert CRITERIA["valid_calculations"](rows) == rows  # and every result the calculator filled in is right
    assert all(r.stop_reason != ">>" for r in records)


@pytest.mark.parametrize("backend", ["hf", pytest.param("vllm", marks=pytest.mark.slow)])
def test_stop_strings_end_the_text_and_are_reported(trained_model, backend):
    """Greedy text with a stop string is the unstopped greedy text cut before its first occurrence."""
    engine = open_backend(trained_model, "t", EngineSpec(backend=backend, batch_size=4), threads=2)
    prompts = [PromptRecord(prompt_id=f"q{i}", text=f"Question: Tom has {i} apples. He buys {i + 2} more.\nAnswer:")
               for i in range(6)]
    try:
        free = engine.generate(prompts, SamplingSpec(n=1, temperature=0.0, max_tokens=30))
        stopped = engine.generate(prompts, SamplingSpec(n=1, temperature=0.0, max_tokens=30, stop=[" ="]))
    finally:
        engine.close()
    assert sum(" =" in r.text for r in free) >= 3  # the model does write " = " before its annotation
    for full, cut in zip(free, stopped):
        if " =" in full.text:
            assert (cut.text, cut.stop_reason, cut.finish_reason) == (full.text.split(" =")[0], " =", "stop")
        else:
            assert (cut.text, cut.stop_reason) == (full.text, None)
