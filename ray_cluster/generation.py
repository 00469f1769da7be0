"""Generation backends behind one interface: vLLM (the fast path) and transformers `generate` (fallback, baseline).

Both tokenize prompts the same way (BOS + prompt, as in training) and return the same typed records, so a
stage never knows which one ran.
"""
from __future__ import annotations

import hashlib
from typing import Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field


class SamplingSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    n: int = Field(default=1, ge=1, description="samples per prompt")
    temperature: float = Field(default=0.0, ge=0, description="0 means greedy")
    top_p: float = Field(default=1.0, gt=0, le=1)
    top_k: int = Field(default=0, ge=0, description="0 disables top-k")
    max_tokens: int = Field(default=160, ge=1)
    stop: list[str] = Field(default_factory=list)
    seed: int = 0
    logprobs: bool = Field(default=False, description="record each completion's summed token log-probability")
    ignore_eos: bool = Field(default=False, description="always generate max_tokens (throughput benchmarks)")
    calculator: bool = Field(default=False, description="GSM8K calculator: the result in each `<<a*b=c>>` "
                             "annotation is computed, not sampled (ray_cluster/calculator.py)")


class PromptRecord(BaseModel):
    prompt_id: str
    text: str
    continuation: str = ""  # completion text so far: generation resumes after it (calculator rounds)
    max_tokens: int | None = None  # this prompt's own budget, below SamplingSpec.max_tokens
    # how the prompt is shown to the model, from its problem row (tasks/data/prompting.py; models/sft_data.py)
    chat_template: bool = True
    system: str | None = None


class CompletionRecord(BaseModel):
    prompt_id: str
    sample_index: int
    model_id: str
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str  # "stop" (EOS or stop string), "length", or "error" (see `error`)
    stop_reason: str | None = None  # the stop string that ended it (None: EOS, length or error)
    gen_s: float  # wall time of the batch this completion came from, divided among its completions
    cumulative_logprob: float | None = None  # sum of the sampled tokens' log-probabilities (raw model)
    error: str | None = None  # why no text was generated (e.g. prompt longer than the context)


def error_records(prompt: PromptRecord, prompt_tokens: int, n: int, model_id: str, error: str
                  ) -> list[CompletionRecord]:
    """The rows of a prompt that could not be generated from: recorded, not raised, so one bad prompt
    never fails a shard of good ones."""
    return [CompletionRecord(prompt_id=prompt.prompt_id, sample_index=k, model_id=model_id, text="",
                             prompt_tokens=prompt_tokens, completion_tokens=0, finish_reason="error",
                             gen_s=0.0, error=error) for k in range(n)]


class TokenSample(BaseModel):
    """One sampled response as tokens, for online RL (issue 16): what the trainer scores must be exactly what the
    engine sampled, so no detokenise/retokenise round trip."""

    token_ids: list[int]
    logprobs: list[float]  # the sampler's log-probability of each sampled token
    eos: bool  # ended on the EOS token, not on the length budget


class EngineSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    backend: Literal["vllm", "hf"] = "vllm"
    batch_size: int = Field(default=64, ge=1, description="prompts per forward batch (hf backend)")
    enforce_eager: bool = Field(default=True, description="vLLM: skip torch.compile/graphs (faster start)")
    kv_cache_gib: int = Field(default=2, ge=1, description="vLLM CPU KV cache (VLLM_CPU_KVCACHE_SPACE)")
    dtype: str = "float32"
    max_model_len: int | None = Field(default=None, ge=16, description="vLLM context; None: the model's own")
    seed: int = Field(default=0, description="engine seed (sampling uses per-prompt seeds from SamplingSpec.seed)")
    tensor_parallel_size: int = Field(default=1, ge=1, description="vLLM: GPUs one engine spans (large models)")
    logprobs_mode: Literal["raw_logprobs", "processed_logprobs"] = Field(
        default="raw_logprobs", description="vLLM: log-probs of the raw model, or after temperature/top-p (online "
        "RL compares the sampler's with the trainer's temperature-scaled ones)")


class GenerationBackend(Protocol):
    """One model loaded in one engine. `generate` returns n records per prompt, in prompt order; prompts
    that cannot be generated from come back as `finish_reason="error"` rows instead of raising."""

    def generate(self, prompts: list[PromptRecord], sampling: SamplingSpec) -> list[CompletionRecord]: ...
    def close(self) -> None: ...
    # online RL (issue 16): weights swapped in place, samples as tokens, the proof that a swap took effect
    def update_weights(self, weights: dict) -> None: ...
    def sample_tokens(self, prompt_ids: list[list[int]], sampling: SamplingSpec, seeds: list[int]
                      ) -> list[list[TokenSample]]: ...
    def sequence_logprobs(self, prompt_ids: list[int], completion_ids: list[int]) -> list[float]: ...


def prompt_seed(seed: int, prompt_id: str) -> int:
    """A per-prompt seed: a prompt's samples do not depend on which shard or batch it landed in."""
    return int.from_bytes(hashlib.sha256(f"{seed}:{prompt_id}".encode()).digest()[:4], "little")


def cut_at_stop(text: str, stop: list[str]) -> tuple[str, str | None]:
    """The text before the first stop string in it, and that stop string (None when there is none)."""
    hits = [(text.index(s), s) for s in stop if s in text]
    if not hits:
        return text, None
    cut, hit = min(hits)
    return text[:cut], hit
