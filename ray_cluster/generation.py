"""Generation backends behind one interface: vLLM (the fast path) and transformers `generate` (fallback, baseline).

Both tokenize prompts the same way (BOS + prompt, as in training) and return the same typed records, so a
stage never knows which one ran.
"""
from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path
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


class PromptRecord(BaseModel):
    prompt_id: str
    text: str


class CompletionRecord(BaseModel):
    prompt_id: str
    sample_index: int
    model_id: str
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str  # "stop" (EOS or stop string) or "length"
    gen_s: float  # wall time of the batch this completion came from, divided among its completions


class EngineSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    backend: Literal["vllm", "hf"] = "vllm"
    batch_size: int = Field(default=64, ge=1, description="prompts per forward batch (hf backend)")
    enforce_eager: bool = Field(default=True, description="vLLM: skip torch.compile/graphs (faster start)")
    kv_cache_gib: int = Field(default=2, ge=1, description="vLLM CPU KV cache (VLLM_CPU_KVCACHE_SPACE)")
    dtype: str = "float32"
    max_model_len: int | None = Field(default=None, ge=16, description="vLLM context; None: the model's own")
    seed: int = Field(default=0, description="engine seed (vLLM on CPU: the only seed, see VLLMBackend)")


class GenerationBackend(Protocol):
    def generate(self, prompts: list[PromptRecord], sampling: SamplingSpec) -> list[CompletionRecord]: ...
    def close(self) -> None: ...


def prompt_seed(seed: int, prompt_id: str) -> int:
    """A per-prompt seed: a prompt's samples do not depend on which shard or batch it landed in."""
    return int.from_bytes(hashlib.sha256(f"{seed}:{prompt_id}".encode()).digest()[:4], "little")


class HFBackend:
    def __init__(self, model_dir: Path, model_id: str, spec: EngineSpec, threads: int):
        import torch

        from models.tiny_llama import load_model_folder

        torch.set_num_threads(threads)
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        self.model, self.tokenizer = load_model_folder(model_dir, self.device)
        self.model_id, self.spec = model_id, spec

    def generate(self, prompts: list[PromptRecord], sampling: SamplingSpec) -> list[CompletionRecord]:
        records: list[CompletionRecord] = []
        for start in range(0, len(prompts), self.spec.batch_size):
            records += self._generate_batch(prompts[start: start + self.spec.batch_size], sampling)
        return records

    def _generate_batch(self, prompts: list[PromptRecord], sampling: SamplingSpec) -> list[CompletionRecord]:
        import torch

        from models.sft_data import encode_prompt

        started = time.time()
        encoded = [encode_prompt(self.tokenizer, p.text) for p in prompts]
        width = max(len(ids) for ids in encoded)
        pad = self.tokenizer.pad_token_id
        # Left padding keeps every prompt's last token at the same position for batched decoding.
        ids = torch.tensor([[pad] * (width - len(e)) + e for e in encoded], device=self.device)
        attention = torch.tensor([[0] * (width - len(e)) + [1] * len(e) for e in encoded], device=self.device)
        torch.manual_seed(prompt_seed(sampling.seed, prompts[0].prompt_id))
        greedy = sampling.temperature == 0
        with torch.no_grad():
            out = self.model.generate(
                input_ids=ids, attention_mask=attention, max_new_tokens=sampling.max_tokens,
                do_sample=not greedy, temperature=None if greedy else sampling.temperature,
                top_p=None if greedy else sampling.top_p, top_k=None if greedy else (sampling.top_k or None),
                num_return_sequences=sampling.n, pad_token_id=pad, eos_token_id=self.tokenizer.eos_token_id,
                stop_strings=sampling.stop or None, tokenizer=self.tokenizer if sampling.stop else None,
            )
        elapsed = (time.time() - started) / max(1, len(prompts) * sampling.n)
        records = []
        for row, seq in enumerate(out[:, width:].tolist()):
            prompt = prompts[row // sampling.n]
            ended = self.tokenizer.eos_token_id in seq or pad in seq
            if self.tokenizer.eos_token_id in seq:
                seq = seq[: seq.index(self.tokenizer.eos_token_id)]
            seq = [t for t in seq if t != pad]
            text = _cut_at_stop(self.tokenizer.decode(seq, skip_special_tokens=True), sampling.stop)
            records.append(CompletionRecord(
                prompt_id=prompt.prompt_id, sample_index=row % sampling.n, model_id=self.model_id, text=text,
                prompt_tokens=len(encoded[row // sampling.n]), completion_tokens=len(seq),
                finish_reason="stop" if ended or len(seq) < sampling.max_tokens else "length", gen_s=elapsed,
            ))
        return records

    def close(self) -> None:
        self.model = None


class VLLMBackend:
    def __init__(self, model_dir: Path, model_id: str, spec: EngineSpec, threads: int):
        # vLLM's CPU build reads these at import/start; defaults that work on a small machine.
        os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", str(spec.kv_cache_gib))
        os.environ.setdefault("VLLM_CPU_NUM_OF_RESERVED_CPU", "0")
        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
        from transformers import AutoTokenizer
        from vllm import LLM

        import torch

        # vLLM 0.32's CPU sampler cannot take per-request seeds ("CPU Generator does not use offset"): on CPU
        # the engine seed alone makes a run reproducible, not each prompt independently of its batch.
        self.per_request_seed = torch.cuda.is_available()
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir)
        self.llm = LLM(model=str(model_dir), dtype=spec.dtype, enforce_eager=spec.enforce_eager,
                       max_model_len=spec.max_model_len, seed=spec.seed, disable_log_stats=True)
        self.model_id, self.spec = model_id, spec

    def generate(self, prompts: list[PromptRecord], sampling: SamplingSpec) -> list[CompletionRecord]:
        from vllm import SamplingParams

        from models.sft_data import encode_prompt

        started = time.time()
        encoded = [encode_prompt(self.tokenizer, p.text) for p in prompts]
        params = [SamplingParams(
            n=sampling.n, temperature=sampling.temperature, top_p=sampling.top_p, top_k=sampling.top_k or -1,
            max_tokens=sampling.max_tokens, stop=sampling.stop or None,
            seed=prompt_seed(sampling.seed, p.prompt_id) if self.per_request_seed else None,
        ) for p in prompts]
        outputs = self.llm.generate([{"prompt_token_ids": ids} for ids in encoded], params, use_tqdm=False)
        elapsed = (time.time() - started) / max(1, len(prompts) * sampling.n)
        records = []
        for prompt, ids, output in zip(prompts, encoded, outputs):
            for index, sample in enumerate(output.outputs):
                records.append(CompletionRecord(
                    prompt_id=prompt.prompt_id, sample_index=index, model_id=self.model_id, text=sample.text,
                    prompt_tokens=len(ids), completion_tokens=len(sample.token_ids),
                    finish_reason="length" if sample.finish_reason == "length" else "stop", gen_s=elapsed,
                ))
        return records

    def close(self) -> None:
        # Without an explicit shutdown vLLM leaves /dev/shm segments behind (see shared/STACK.md).
        engine = getattr(self.llm, "llm_engine", None)
        shutdown = getattr(engine, "engine_core", None)
        if shutdown is not None and hasattr(shutdown, "shutdown"):
            shutdown.shutdown()
        self.llm = None


def _cut_at_stop(text: str, stop: list[str]) -> str:
    cut = min((text.index(s) for s in stop if s in text), default=len(text))
    return text[:cut]


def open_backend(model_dir: Path, model_id: str, spec: EngineSpec, threads: int) -> GenerationBackend:
    backend = VLLMBackend if spec.backend == "vllm" else HFBackend
    return backend(model_dir, model_id, spec, threads)
