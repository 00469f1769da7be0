"""The generation engine actor body: one model in one backend, shard after shard; its model can be changed in place
(`load`: the next stage's weights into the open engine) or its weights updated (online RL)."""
from __future__ import annotations

import time

from ray_cluster.folders import RemoteFolder
from ray_cluster.generation import CompletionRecord, EngineSpec, PromptRecord, SamplingSpec


class GenerationEngine:
    """Ray actor body: holds one model in one backend, generates shard after shard; `load` changes its model."""

    def __init__(self, model: RemoteFolder, model_id: str, spec: EngineSpec, threads: int):
        self.spec, self.threads = spec, threads
        self.backend, self.loaded, self.digest = None, None, None
        self.load(model, model_id)

    def load(self, model: RemoteFolder, model_id: str) -> float:
        """Make `model` the one generating; returns the seconds it took (0 when it already was). A model whose
        engine files (architecture, tokenizer, generation config) are the open one's gets its weights swapped in
        place; any other reopens the backend in this process."""
        from ray_cluster.backends import open_backend
        from ray_cluster.folders import materialize
        from ray_cluster.weight_files import engine_files_digest, read_weights

        started, key = time.time(), (model.uri, model.content_hash)
        if key != self.loaded:
            path = materialize(model)
            digest = engine_files_digest(path)
            weights = read_weights(path) if self.backend is not None and digest == self.digest else None
            if weights is not None:
                self.backend.update_weights(weights)
            else:
                if self.backend is not None:
                    self.backend.close()
                self.backend = open_backend(path, model_id, self.spec, self.threads)
            self.loaded, self.digest = key, digest
        self.backend.model_id = model_id  # the records carry the stage's name for the model
        return time.time() - started

    def generate(self, prompts: list[PromptRecord], sampling: SamplingSpec, model: RemoteFolder | None = None,
                 model_id: str = "") -> list[CompletionRecord]:
        """With `model`: generate from that model (a restarted actor comes back with its first model)."""
        from ray_cluster.calculator import generate_records

        if model is not None:
            self.load(model, model_id)
        return generate_records(self.backend, prompts, sampling)

    def update_weights(self, weights: dict) -> float:
        """Swap in new weights without restarting (online RL); returns the seconds it took."""
        started = time.time()
        self.backend.update_weights(weights)
        self.loaded = None  # the weights are no longer any folder's
        return time.time() - started

    def sample_tokens(self, prompt_ids: list[list[int]], sampling: SamplingSpec, seeds: list[int]) -> list:
        return self.backend.sample_tokens(prompt_ids, sampling, seeds)

    def sequence_logprobs(self, prompt_ids: list[int], completion_ids: list[int]) -> list[float]:
        return self.backend.sequence_logprobs(prompt_ids, completion_ids)

    def ping(self) -> bool:
        return True

    def close(self) -> None:
        self.backend.close()
