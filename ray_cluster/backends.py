"""Opening a generation backend by its name in `EngineSpec.backend`: the one place that knows the backend
modules (they import the records of ray_cluster/generation.py, so the factory cannot live there)."""
from __future__ import annotations

from pathlib import Path

from ray_cluster.generation import EngineSpec, GenerationBackend


def backend_class(spec: EngineSpec) -> type:
    if spec.backend == "vllm":
        from ray_cluster.vllm_backend import VLLMBackend as backend
    else:
        from ray_cluster.hf_backend import HFBackend as backend
    return backend


def open_backend(model_dir: Path, model_id: str, spec: EngineSpec, threads: int) -> GenerationBackend:
    return backend_class(spec)(model_dir, model_id, spec, threads)
