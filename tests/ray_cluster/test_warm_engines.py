"""vLLM engines kept between stages (issue 16, item 7): the next stage's model is swapped into the same engine and
generates exactly what a freshly started engine generates; a model of another shape reopens the backend in the
same actor; an engine that died comes back and loads the stage's model before generating; closing leaves no
actor and no /dev/shm segment."""
from __future__ import annotations

import os
import time

import pytest

from ray_cluster.engine_pool import PoolResources, run_shards
from ray_cluster.folders import RemoteFolder
from ray_cluster.generation import EngineSpec, PromptRecord, SamplingSpec

pytestmark = pytest.mark.slow

SAMPLING = SamplingSpec(n=2, temperature=1.0, max_tokens=8, seed=3, logprobs=True)
WARM = PoolResources(num_engines=1, cpus_per_engine=1)
COLD = WARM.model_copy(update={"keep_warm": False})


@pytest.fixture(autouse=True)
def no_kept_set(ray_local):
    """Start without engines kept by earlier tests in this process (an online RL stage gives its engines back)."""
    from ray_cluster.warm_engines import close_all

    close_all()


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, RemoteFolder]:
    from generation_assets import TINY, build_model_folder

    wider = TINY.model_copy(update={"intermediate_size": 192})
    return {name: RemoteFolder(uri=str(build_model_folder(tmp_path_factory.mktemp(name), seed, size)))
            for name, seed, size in (("a", 0, TINY), ("b", 1, TINY), ("c", 2, wider))}


def _prompts() -> dict[int, list[PromptRecord]]:
    prompts = [PromptRecord(prompt_id=f"p{i}", text=f"Question: Tom has {i} apples.\nAnswer:") for i in range(5)]
    return {0: prompts[:3], 1: prompts[3:]}


def _run(model: RemoteFolder, resources: PoolResources, sampling: SamplingSpec = SAMPLING) -> list:
    done: dict[int, list] = {}
    run_shards(model, "m", EngineSpec(backend="vllm"), resources, _prompts(), sampling,
               lambda shard_id, records: done.setdefault(shard_id, records))
    return [r for shard_id in sorted(done) for r in done[shard_id]]


def _same_samples(got: list, want: list) -> None:
    assert [r.text for r in got] == [r.text for r in want]
    assert [r.cumulative_logprob for r in got] == pytest.approx([r.cumulative_logprob for r in want], abs=1e-4)


def test_kept_engines_take_the_next_model_in_place(models, ray_local):
    import ray
    from ray.util.state import list_actors

    from ray_cluster.backends import open_backend
    from ray_cluster.folders import materialize
    from ray_cluster.warm_engines import close_all, kept_engines

    shm_before = set(os.listdir("/dev/shm"))
    fresh_b = _run(models["b"], COLD)  # a freshly started engine, closed with its stage
    assert not kept_engines()
    try:
        from_a = _run(models["a"], WARM)
        [engine] = kept_engines()
        from_b = _run(models["b"], WARM)
        assert kept_engines() == [engine]  # the same actor, B's weights swapped in
        _same_samples(from_b, fresh_b)
        assert [r.text for r in from_b] != [r.text for r in from_a]

        # another shape (a wider MLP): reopened in the same actor, greedy text as transformers writes it
        greedy = SamplingSpec(n=1, temperature=0.0, max_tokens=10)
        from_c = _run(models["c"], WARM, greedy)
        assert kept_engines() == [engine]
        hf = open_backend(materialize(models["c"]), "m", EngineSpec(backend="hf"), 1)
        assert [r.text for r in from_c] == [r.text for r in hf.generate([p for s in _prompts().values() for p in s],
                                                                        greedy)]

        # the actor dies: Ray restarts it with the model it was created with (A); asked for B, it loads B first
        ray.kill(engine, no_restart=False)
        restarted = _call_when_back(engine, _prompts()[0], models["b"])
        _same_samples(restarted, fresh_b[: len(restarted)])
    finally:
        close_all()
    assert not kept_engines()
    time.sleep(1)
    alive = list_actors(filters=[("class_name", "=", "GenerationEngine"), ("state", "=", "ALIVE")])
    assert not alive, f"engine actors still alive after close_all: {alive}"
    assert set(os.listdir("/dev/shm")) - shm_before == set()


def _call_when_back(engine, prompts: list[PromptRecord], model: RemoteFolder, wait_s: float = 120) -> list:
    import ray

    deadline = time.time() + wait_s
    while True:
        try:
            return ray.get(engine.generate.remote(prompts, SAMPLING, model, "m"))
        except (ray.exceptions.ActorUnavailableError, ray.exceptions.RayActorError):
            if time.time() > deadline:
                raise
            time.sleep(0.5)


def test_one_set_is_kept_sized_by_the_last_stage_and_a_new_spec_replaces_it(models, ray_local):
    """Bookkeeping that would otherwise leak engines (2 GiB of KV cache each for vLLM): a stage wanting fewer
    engines closes the rest; a set kept while another is (flows side by side) is closed; another spec closes
    the kept set. Transformers engines, as actors, start fastest."""
    import ray

    from ray_cluster import warm_engines

    spec, other = EngineSpec(backend="hf"), EngineSpec(backend="hf", batch_size=7)
    try:
        two = warm_engines.take(models["a"], "m", spec, 1, 0, 2)
        warm_engines.keep(two, spec, 1)
        [first] = warm_engines.take(models["a"], "m", spec, 1, 0, 1)
        assert first == two[0] and _closed(two[1])  # the spare one was closed
        concurrent = warm_engines.take(models["a"], "m", spec, 1, 0, 1)
        warm_engines.keep([first], spec, 1)
        warm_engines.keep(concurrent, spec, 1)  # a set is kept already: this one is closed
        assert warm_engines.kept_engines() == [first] and _closed(concurrent[0])
        replacement = warm_engines.take(models["a"], "m", other, 1, 0, 1)
        assert _closed(first) and replacement[0] != first
        assert ray.get(replacement[0].generate.remote(_prompts()[0], SamplingSpec(max_tokens=2), models["b"], "b"))
        warm_engines.keep(replacement, other, 1)
    finally:
        warm_engines.close_all()


def _answers(engine) -> bool:
    import ray

    try:
        return ray.get(engine.ping.remote(), timeout=10)
    except Exception:
        return False


def _closed(engine, wait_s: float = 30) -> bool:
    """The engine stops answering within `wait_s` (ray.kill is asynchronous: a ping sent right after it may still
    be answered); one that was wrongly kept answers all along."""
    deadline = time.time() + wait_s
    while _answers(engine):
        if time.time() > deadline:
            return False
        time.sleep(0.2)
    return True
