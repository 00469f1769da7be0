"""The vLLM backend: continuous batching, n samples per prompt sharing one prefill; CPU build here, CUDA elsewhere."""
from __future__ import annotations

import os
import time
from pathlib import Path

from ray_cluster.generation import (
    CompletionRecord, EngineSpec, PromptRecord, SamplingSpec, TokenSample, error_records, prompt_seed,
)
from ray_cluster.model_inputs import context_error, encode_for_model


def engine_kwargs(model_dir: Path, spec: EngineSpec) -> dict:
    """`vllm.LLM` arguments for an EngineSpec (the benchmark's raw-vLLM baseline uses the same)."""
    import torch
    from transformers import AutoConfig

    kwargs = dict(model=str(model_dir), dtype=spec.dtype, enforce_eager=spec.enforce_eager,
                  max_model_len=spec.max_model_len, seed=spec.seed, disable_log_stats=True,
                  tensor_parallel_size=spec.tensor_parallel_size, logprobs_mode=spec.logprobs_mode)
    if not torch.cuda.is_available():
        # vLLM 0.32 on CPU crashes ("CPU Generator does not use offset") when a seeded request's prompt is split
        # over steps by chunked prefill; whole-prompt prefill avoids it and keeps per-prompt seeds.
        context = spec.max_model_len or AutoConfig.from_pretrained(model_dir).max_position_embeddings
        kwargs |= dict(enable_chunked_prefill=False, max_num_batched_tokens=max(context, 8192))
    return kwargs


class VLLMBackend:
    # an engine left open in an idle Ray worker that Ray later kills leaves /dev/shm segments behind (it needs its
    # explicit shutdown), so vLLM engines live in actors for one stage and are closed at its end
    reusable_in_process = False

    def __init__(self, model_dir: Path, model_id: str, spec: EngineSpec, threads: int):
        # vLLM's CPU build reads these at import/start; defaults that work on a small machine.
        os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", str(spec.kv_cache_gib))
        os.environ.setdefault("VLLM_CPU_NUM_OF_RESERVED_CPU", "0")
        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
        import torch
        from transformers import AutoTokenizer
        from vllm import LLM

        torch.set_num_threads(threads)
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir)
        self.llm = LLM(**engine_kwargs(model_dir, spec))
        self.context = self.llm.llm_engine.model_config.max_model_len
        self.model_id, self.spec = model_id, spec

    def generate(self, prompts: list[PromptRecord], sampling: SamplingSpec) -> list[CompletionRecord]:
        started = time.time()
        encoded = [encode_for_model(self.tokenizer, p.text, p.chat_template, p.continuation, p.system)
                   for p in prompts]
        errors = {i: context_error(len(ids), self.context) for i, ids in enumerate(encoded)}
        ok = [i for i, error in errors.items() if error is None]
        outputs = self.llm.generate(
            [{"prompt_token_ids": encoded[i]} for i in ok],
            [self._params(prompts[i], len(encoded[i]), sampling) for i in ok], use_tqdm=False,
        ) if ok else []
        elapsed = (time.time() - started) / max(1, len(ok) * sampling.n)
        by_prompt = {i: error_records(prompts[i], len(encoded[i]), sampling.n, self.model_id, errors[i])
                     for i in errors if errors[i]}
        for i, output in zip(ok, outputs):
            by_prompt[i] = [CompletionRecord(
                prompt_id=prompts[i].prompt_id, sample_index=index, model_id=self.model_id, text=sample.text,
                prompt_tokens=len(encoded[i]), completion_tokens=len(sample.token_ids),
                finish_reason="length" if sample.finish_reason == "length" else "stop", gen_s=elapsed,
                stop_reason=sample.stop_reason if isinstance(sample.stop_reason, str) else None,
                cumulative_logprob=sample.cumulative_logprob if sampling.logprobs else None,
            ) for index, sample in enumerate(output.outputs)]
        return [r for i in range(len(prompts)) for r in by_prompt[i]]

    def _params(self, prompt: PromptRecord, prompt_tokens: int, sampling: SamplingSpec):
        from vllm import SamplingParams

        return SamplingParams(
            n=sampling.n, temperature=sampling.temperature, top_p=sampling.top_p, top_k=sampling.top_k or -1,
            # vLLM rejects a request whose prompt + max_tokens exceeds the context: cap it, as HF does.
            max_tokens=min(prompt.max_tokens or sampling.max_tokens, self.context - prompt_tokens),
            stop=sampling.stop or None,
            # a per-prompt seed: a prompt's samples do not depend on its shard, batch or engine (resume-safe)
            seed=prompt_seed(sampling.seed, prompt.prompt_id),
            logprobs=0 if sampling.logprobs else None, ignore_eos=sampling.ignore_eos,
        )

    def update_weights(self, weights: dict) -> None:
        """New weights in place, engine kept up (issue 16): vLLM's own reload path, which repacks tensors for its
        kernels (a plain `load_weights` fails on CPU), then drop the prefix cache, whose KV was computed with the
        old weights and would otherwise be served again."""
        self.llm.collective_rpc("reload_weights", kwargs={"weights_iterator": list(weights.items()),
                                                          "is_checkpoint_format": True})
        self.llm.reset_prefix_cache()

    def sample_tokens(self, prompt_ids: list[list[int]], sampling: SamplingSpec, seeds: list[int]
                      ) -> list[list[TokenSample]]:
        """n samples per prompt as token ids with the sampler's per-token log-probs."""
        from vllm import SamplingParams

        params = [SamplingParams(n=sampling.n, temperature=sampling.temperature, top_p=sampling.top_p,
                                 top_k=sampling.top_k or -1, max_tokens=min(sampling.max_tokens,
                                                                           self.context - len(ids)),
                                 seed=seed, logprobs=0) for ids, seed in zip(prompt_ids, seeds)]
        outputs = self.llm.generate([{"prompt_token_ids": ids} for ids in prompt_ids], params, use_tqdm=False)
        eos = self.tokenizer.eos_token_id
        return [[TokenSample(token_ids=list(o.token_ids),
                             logprobs=[step[token].logprob for step, token in zip(o.logprobs, o.token_ids)],
                             eos=bool(o.token_ids) and o.token_ids[-1] == eos) for o in output.outputs]
                for output in outputs]

    def sequence_logprobs(self, prompt_ids: list[int], completion_ids: list[int]) -> list[float]:
        """The engine's log-probability of each completion token after the prompt (the weight-sync proof)."""
        from vllm import SamplingParams

        ids = prompt_ids + completion_ids
        out = self.llm.generate([{"prompt_token_ids": ids}], SamplingParams(max_tokens=1, prompt_logprobs=0),
                                use_tqdm=False)[0]
        return [out.prompt_logprobs[i][ids[i]].logprob for i in range(len(prompt_ids), len(ids))]

    def close(self) -> None:
        # Without an explicit shutdown vLLM leaves /dev/shm segments behind (see shared/STACK.md).
        engine = getattr(self.llm, "llm_engine", None)
        shutdown = getattr(engine, "engine_core", None)
        if shutdown is not None and hasattr(shutdown, "shutdown"):
            shutdown.shutdown()
        self.llm = None
