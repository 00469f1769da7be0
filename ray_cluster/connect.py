"""Connecting to Ray: an in-process local cluster by default, an existing one when `address`/RAY_ADDRESS is set."""
from __future__ import annotations

import os

from pydantic import BaseModel, ConfigDict, Field


class RayConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    address: str | None = Field(default=None, description="ray://... or auto; None → RAY_ADDRESS or a local cluster")
    num_cpus: int | None = Field(default=None, ge=1, description="CPUs of a local cluster (None: all)")
    object_store_mb: int = Field(default=512, ge=64, description="object store of a local cluster")


# Variables the engines and Train workers need in their own processes (Ray workers do not inherit the driver's
# environment when the cluster was started elsewhere).
_FORWARDED_ENV = (
    "PREFECT_API_URL", "PREFECT_API_AUTH_STRING", "VLLM_CPU_KVCACHE_SPACE", "VLLM_CPU_NUM_OF_RESERVED_CPU",
    "VLLM_CACHE_ROOT",
    "TORCHINDUCTOR_CACHE_DIR", "HF_HUB_OFFLINE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
    "AWS_ENDPOINT_URL", "VLLM_ENABLE_V1_MULTIPROCESSING", "TOKENIZERS_PARALLELISM",
)


def ensure_ray(cfg: RayConfig) -> None:
    """Start or join Ray once per process; later calls are no-ops."""
    import ray

    if ray.is_initialized():
        return
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    env_vars = {name: os.environ[name] for name in _FORWARDED_ENV if name in os.environ}
    address = cfg.address or os.environ.get("RAY_ADDRESS")
    kwargs: dict = {"log_to_driver": True, "configure_logging": False}
    # Inside a Ray Job (winnow submit) the job's runtime env already carries these; a second one would conflict.
    if "RAY_JOB_CONFIG_JSON_ENV_VAR" not in os.environ:
        kwargs["runtime_env"] = {"env_vars": env_vars}
    if address:
        ray.init(address=address, **kwargs)
    else:
        # The dashboard stays on: Ray Train's placement-group cleaner polls the State API it serves.
        ray.init(num_cpus=cfg.num_cpus, object_store_memory=cfg.object_store_mb * 1024 * 1024, **kwargs)


def shutdown_ray() -> None:
    """Close the engines kept between stages (vLLM needs its explicit shutdown), then leave Ray."""
    import ray

    from ray_cluster.warm_engines import close_all

    if ray.is_initialized():
        close_all()
        ray.shutdown()
