"""Reward-model scoring on Ray: scorer actors each hold one reward model and score batches of typed records.

Batches go to whichever scorer is free; the caller (the label stage) persists the scores.
"""
from __future__ import annotations

from dataclasses import dataclass

from ray_cluster.folders import RemoteFolder


@dataclass(frozen=True)
class ScoreRequest:
    row_index: int
    text: str  # prompt + completion, exactly as the policy saw and wrote it


@dataclass(frozen=True)
class ScoreResult:
    row_index: int
    reward: float


@dataclass(frozen=True)
class StepScoreRequest:
    row_index: int
    prompt: str
    steps: tuple[str, ...]  # the completion cut into steps (tasks/labelling/steps.py)


@dataclass(frozen=True)
class StepScoreResult:
    row_index: int
    step_scores: tuple[float, ...]  # P(step is good) per step, read at each step end (models/process_reward.py)


class RewardScorer:
    """Ray actor body: one reward model on one device (GPU when given one, else CPU)."""

    def __init__(self, model: RemoteFolder, max_len: int, threads: int):
        import torch

        from models.reward_model import load_reward_model
        from ray_cluster.folders import materialize

        torch.set_num_threads(max(1, threads))
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        self.model, self.tokenizer = load_reward_model(materialize(model), self.device)
        self.max_len = max_len

    def score(self, batch: list[ScoreRequest]) -> list[ScoreResult]:
        from models.reward_model import encode_for_reward, rewards_at_eos

        enc = encode_for_reward(self.tokenizer, [r.text for r in batch], self.max_len)
        rewards = rewards_at_eos(self.model, enc["input_ids"].to(self.device),
                                 enc["attention_mask"].to(self.device), enc["eos_index"])
        return [ScoreResult(r.row_index, float(v)) for r, v in zip(batch, rewards.cpu().tolist())]

    def score_steps(self, batch: list[StepScoreRequest]) -> list[StepScoreResult]:
        """A process reward model (the same folder format) read at every step end."""
        from models.process_reward import step_probabilities

        probs = step_probabilities(self.model, self.tokenizer, [(r.prompt, list(r.steps)) for r in batch],
                                   self.max_len, self.device)
        return [StepScoreResult(r.row_index, tuple(p)) for r, p in zip(batch, probs)]


def score_on_ray(model: RemoteFolder, requests: list, *, batch_size: int, max_len: int, num_scorers: int,
                 cpus_per_scorer: float, use_gpu: bool, on_batch=None, method: str = "score") -> list:
    """Score every request with `num_scorers` actors (`method`: "score" for ScoreRequests at EOS, "score_steps"
    for StepScoreRequests at every step end); batches go to the first free actor."""
    import ray

    batches = [requests[i: i + batch_size] for i in range(0, len(requests), batch_size)]
    if not batches:
        return []
    actor_cls = ray.remote(RewardScorer).options(num_cpus=cpus_per_scorer, num_gpus=1 if use_gpu else 0)
    scorers = [actor_cls.remote(model, max_len, int(cpus_per_scorer)) for _ in range(min(num_scorers, len(batches)))]
    pending, results, queue = {}, [], list(reversed(batches))
    try:
        for scorer in scorers:
            if queue:
                pending[getattr(scorer, method).remote(queue.pop())] = scorer
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            scorer = pending.pop(done[0])
            batch_results = ray.get(done[0])
            results.extend(batch_results)
            if on_batch is not None:
                on_batch(len(batch_results))
            if queue:
                pending[getattr(scorer, method).remote(queue.pop())] = scorer
    finally:
        for scorer in scorers:
            ray.kill(scorer)
    return sorted(results, key=lambda r: r.row_index)
