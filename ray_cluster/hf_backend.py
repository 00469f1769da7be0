"""The transformers `generate` backend: the fallback where vLLM cannot run, and the baseline it is measured against."""
from __future__ import annotations

import time
from pathlib import Path

from ray_cluster.generation import (
    CompletionRecord, EngineSpec, PromptRecord, SamplingSpec, TokenSample, cut_at_stop, error_records, prompt_seed,
)
from ray_cluster.model_inputs import context_error, encode_for_model


class HFBackend:
    # may stay open in a Ray worker process between shards and stages (ray_cluster/engine_pool.py): it holds
    # nothing outside the process
    reusable_in_process = True

    def __init__(self, model_dir: Path, model_id: str, spec: EngineSpec, threads: int):
        import torch

        from models.tiny_llama import load_model_folder

        torch.set_num_threads(threads)
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        self.model, self.tokenizer = load_model_folder(model_dir, self.device)
        self.model_id, self.spec = model_id, spec
        self.context = spec.max_model_len or self.model.config.max_position_embeddings
        if self.tokenizer.pad_token_id is None:  # batched decoding needs a pad id; EOS is the usual stand-in
            self.tokenizer.pad_token_id = self.tokenizer.eos_token_id

    def generate(self, prompts: list[PromptRecord], sampling: SamplingSpec) -> list[CompletionRecord]:
        encoded = [encode_for_model(self.tokenizer, p.text, p.chat_template, p.continuation, p.system)
                   for p in prompts]
        by_prompt: dict[int, list[CompletionRecord]] = {}
        ok = []
        for i, (prompt, ids) in enumerate(zip(prompts, encoded)):
            error = context_error(len(ids), self.context)
            if error:
                by_prompt[i] = error_records(prompt, len(ids), sampling.n, self.model_id, error)
            else:
                ok.append(i)
        for start in range(0, len(ok), self.spec.batch_size):
            batch = ok[start: start + self.spec.batch_size]
            records = self._generate_batch([prompts[i] for i in batch], [encoded[i] for i in batch], sampling)
            for j, i in enumerate(batch):
                by_prompt[i] = records[j * sampling.n: (j + 1) * sampling.n]
        return [r for i in range(len(prompts)) for r in by_prompt[i]]

    def _generate_batch(self, prompts: list[PromptRecord], encoded: list[list[int]], sampling: SamplingSpec
                        ) -> list[CompletionRecord]:
        import torch

        started = time.time()
        width = max(len(ids) for ids in encoded)
        pad, eos = self.tokenizer.pad_token_id, self.tokenizer.eos_token_id
        # Left padding keeps every prompt's last token at the same position for batched decoding.
        ids = torch.tensor([[pad] * (width - len(e)) + e for e in encoded], device=self.device)
        attention = torch.tensor([[0] * (width - len(e)) + [1] * len(e) for e in encoded], device=self.device)
        torch.manual_seed(prompt_seed(sampling.seed, prompts[0].prompt_id))
        greedy = sampling.temperature == 0
        budgets = [p.max_tokens or sampling.max_tokens for p in prompts]  # a prompt may have its own budget
        max_new = min(max(budgets), self.context - width)  # never run past the position table
        with torch.no_grad():
            out = self.model.generate(
                input_ids=ids, attention_mask=attention, max_new_tokens=max_new,
                min_new_tokens=max_new if sampling.ignore_eos else None,
                do_sample=not greedy, temperature=None if greedy else sampling.temperature,
                top_p=None if greedy else sampling.top_p, top_k=None if greedy else (sampling.top_k or None),
                num_return_sequences=1 if greedy else sampling.n, pad_token_id=pad, eos_token_id=eos,
                stopping_criteria=[StopOnText(self.tokenizer, sampling.stop, width)] if sampling.stop else None,
                return_dict_in_generate=True, output_logits=sampling.logprobs,
            )
        new_tokens = out.sequences[:, width:]
        logprobs = _sampled_logprobs(out.logits, new_tokens) if sampling.logprobs else None
        if greedy and sampling.n > 1:  # n greedy samples are n copies of one (as vLLM returns them)
            new_tokens = new_tokens.repeat_interleave(sampling.n, dim=0)
            logprobs = logprobs.repeat_interleave(sampling.n, dim=0) if logprobs is not None else None
        elapsed = (time.time() - started) / max(1, len(prompts) * sampling.n)
        records = []
        for row, seq in enumerate(new_tokens.tolist()):
            prompt, budget = prompts[row // sampling.n], min(budgets[row // sampling.n], max_new)
            length = min(_completion_length(seq, eos, pad, sampling.ignore_eos), budget)
            text, stop_reason = cut_at_stop(self.tokenizer.decode(seq[:length], skip_special_tokens=True),
                                            sampling.stop)
            stopped = length < budget or (not sampling.ignore_eos and seq[length - 1] == eos)
            records.append(CompletionRecord(
                prompt_id=prompt.prompt_id, sample_index=row % sampling.n, model_id=self.model_id, text=text,
                prompt_tokens=len(encoded[row // sampling.n]), completion_tokens=length,
                finish_reason="stop" if stopped else "length", gen_s=elapsed, stop_reason=stop_reason,
                cumulative_logprob=float(logprobs[row, :length].sum()) if logprobs is not None else None,
            ))
        return records

    def update_weights(self, weights: dict) -> None:
        self.model.load_state_dict(weights, strict=True)

    def sample_tokens(self, prompt_ids: list[list[int]], sampling: SamplingSpec, seeds: list[int]
                      ) -> list[list[TokenSample]]:
        """One prompt at a time (no padding to get wrong); log-probs from the processed scores (temperature,
        top-p), as the RL trainer computes them."""
        import torch

        eos, results = self.tokenizer.eos_token_id, []
        for ids, seed in zip(prompt_ids, seeds):
            torch.manual_seed(seed)
            with torch.no_grad():
                out = self.model.generate(
                    input_ids=torch.tensor([ids], device=self.device),
                    attention_mask=torch.ones(1, len(ids), dtype=torch.long, device=self.device),
                    max_new_tokens=min(sampling.max_tokens, self.context - len(ids)), do_sample=True,
                    temperature=sampling.temperature, top_p=sampling.top_p, top_k=sampling.top_k or None,
                    num_return_sequences=sampling.n, pad_token_id=self.tokenizer.pad_token_id, eos_token_id=eos,
                    return_dict_in_generate=True, output_scores=True)
            new = out.sequences[:, len(ids):]
            logprobs = torch.log_softmax(torch.stack(out.scores, 1).float(), -1).gather(-1, new[..., None])[..., 0]
            samples = []
            for row, logp in zip(new.tolist(), logprobs.tolist()):
                length = _completion_length(row, eos, self.tokenizer.pad_token_id, False)
                samples.append(TokenSample(token_ids=row[:length], logprobs=logp[:length],
                                           eos=length > 0 and row[length - 1] == eos))
            results.append(samples)
        return results

    def sequence_logprobs(self, prompt_ids: list[int], completion_ids: list[int]) -> list[float]:
        import torch

        ids = torch.tensor([prompt_ids + completion_ids], device=self.device)
        with torch.no_grad():
            logp = torch.log_softmax(self.model(ids).logits[0, :-1].float(), -1)
        targets = ids[0, 1:]
        return logp.gather(-1, targets[:, None])[:, 0][len(prompt_ids) - 1:].tolist()

    def close(self) -> None:
        self.model = None


class StopOnText:
    """Ends a row once a stop string appears in its newest generated tokens. transformers' own
    StopStringCriteria cannot read word-level vocabularies such as Winnow's digit tokenizer; decoding a short
    tail per row works with any tokenizer and costs little next to the forward pass."""

    def __init__(self, tokenizer, stop: list[str], prompt_width: int):
        self.tokenizer, self.stop, self.width = tokenizer, stop, prompt_width
        self.window = max(len(s) for s in stop) + 1  # every token is at least one character long

    def __call__(self, input_ids, scores, **kwargs):  # input_ids: (B, T) → (B,) bool
        import torch

        tails = input_ids[:, self.width:][:, -self.window:].tolist()
        hits = [any(s in self.tokenizer.decode(tail, skip_special_tokens=True) for s in self.stop) for tail in tails]
        return torch.tensor(hits, dtype=torch.bool, device=input_ids.device)


def _completion_length(seq: list[int], eos: int, pad: int, ignore_eos: bool) -> int:
    """Tokens generated up to and including EOS (as vLLM counts them); without EOS, up to the padding that
    `generate` appends once a row stopped on a stop string."""
    if not ignore_eos and eos in seq:
        return seq.index(eos) + 1
    length = len(seq)
    while length > 0 and seq[length - 1] == pad:
        length -= 1
    return length


def _sampled_logprobs(logits: tuple, tokens):  # logits: T × (B, V) raw scores; tokens: (B, T) → (B, T)
    import torch

    stacked = torch.stack(logits, dim=1).float()  # (B, T, V)
    return torch.log_softmax(stacked, dim=-1).gather(-1, tokens[:, : stacked.shape[1], None]).squeeze(-1)
