"""Online RL's engines get new weights in place (issue 16, item 4): after a policy update and a sync, a long-lived
vLLM engine's log-probs change and equal the trainer's — also for a prompt whose KV sat in the prefix cache."""
from __future__ import annotations

import pytest
import torch

from models.rl.batch import pack
from ray_cluster.rl_config import OnlineRLConfig, RLOptimConfig, RolloutConfig
from ray_cluster.folders import RemoteFolder
from ray_cluster.generation import EngineSpec, SamplingSpec

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    from generation_assets import TINY, build_model_folder

    # a context of 1024: vLLM's CPU KV blocks hold 256 tokens, and only whole blocks enter the prefix cache
    return build_model_folder(tmp_path_factory.mktemp("policy"), size=TINY.model_copy(update={"max_positions": 1024}))


def _actors(model_dir, backend: str, temperature: float):
    import ray

    from ray_cluster.engine_pool import GenerationEngine
    from ray_cluster.policy_trainer import PolicyTrainer

    # a large step, so stale weights or stale cached KV could not hide inside the tolerance
    cfg = OnlineRLConfig(optim=RLOptimConfig(lr=1e-2), rollout=RolloutConfig(temperature=temperature,
                                               engine=EngineSpec(backend=backend, logprobs_mode="processed_logprobs")))
    folder = RemoteFolder(uri=str(model_dir))
    engine = ray.remote(GenerationEngine).options(num_cpus=1).remote(folder, "p", cfg.rollout.engine, 1)
    trainer = ray.remote(PolicyTrainer).options(num_cpus=0).remote(folder, cfg)
    return engine, trainer


def _one_update(trainer, prompt: list[int], responses: list[list[int]]) -> None:
    """A clipped-ratio step that pushes the first response up and the second down."""
    import ray

    batch = pack([prompt, prompt], responses, pad_id=0)
    scored = ray.get(trainer.score.remote(batch))
    advantages = torch.tensor([[1.0], [-1.0]]) * batch["response_mask"]
    ray.get(trainer.update.remote(batch, advantages, scored["old_logp"], scored["ref_logp"], 0.0, 0))


@pytest.mark.parametrize("backend", ["vllm", "hf"])
def test_engines_generate_with_the_trainers_weights_after_a_sync(model_dir, ray_local, backend):
    import ray
    from transformers import AutoTokenizer

    engine, trainer = _actors(model_dir, backend, temperature=0.7)
    try:
        # long enough to fill several KV blocks, so the prefix cache holds it
        prompt = AutoTokenizer.from_pretrained(model_dir).encode(" ".join(["Question: Tom has 3 apples."] * 80))[:600]
        sampling = SamplingSpec(n=2, temperature=0.7, max_tokens=8)
        # sampled once before the update: the prompt's KV is now in vLLM's prefix cache
        before = ray.get(engine.sample_tokens.remote([prompt], sampling, [7]))[0]
        fixed = before[0].token_ids
        old_engine = ray.get(engine.sequence_logprobs.remote(prompt, fixed))
        _one_update(trainer, prompt, [s.token_ids for s in before])
        seconds = ray.get(engine.update_weights.remote(ray.put(ray.get(trainer.weights.remote()))))
        # fresh samples of the cached prompt: the sampler's temperature-scaled log-probs equal the trainer's
        after = ray.get(engine.sample_tokens.remote([prompt], sampling, [8]))[0]
        for sample in after:
            assert sample.logprobs == pytest.approx(_trainer_logprobs(trainer, prompt, sample.token_ids), abs=2e-4)
        new_engine = ray.get(engine.sequence_logprobs.remote(prompt, fixed))
        assert seconds >= 0 and max(abs(a - b) for a, b in zip(old_engine, new_engine)) > 0.1

        # the engine's raw log-probs of the fixed sequence are the updated trainer's at temperature 1
        assert new_engine == pytest.approx(_trainer_logprobs(trainer, prompt, fixed, 1.0), abs=2e-4)
    finally:
        ray.kill(engine), ray.kill(trainer)


def _trainer_logprobs(trainer, prompt: list[int], tokens: list[int], temperature: float | None = None) -> list:
    import ray

    scored = ray.get(trainer.score.remote(pack([prompt], [tokens], 0), temperature))
    return scored["old_logp"][0, : len(tokens)].tolist()
