"""Reward-model scoring on Ray: a scorer holds one reward model (outcome RM read at EOS, or a PRM read at every
step end) and scores batches of typed records. On CPU a batch is a Ray task whose worker process keeps the model
for the next batch and stage; on GPU the scorers are actors for one call. The caller persists the scores.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

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
        # never past the model's positions: a longer row is truncated (EOS kept) or loses its last steps
        self.max_len = min(max_len, getattr(self.model.config, "max_position_embeddings", None) or max_len)

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


_HELD: dict = {}  # in a Ray worker process: the scorer the last batch loaded, kept for the next batch or stage


def _stamp(folder: Path) -> tuple:
    """The folder's files by name, size and mtime: a model retrained in place is another model."""
    return tuple(sorted((f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in folder.iterdir() if f.is_file()))


def score_batch(model: RemoteFolder, max_len: int, threads: int, method: str, batch: list) -> list:
    """One batch as a Ray task on CPU, in a worker process that keeps the loaded model for the next batch (of
    this stage or the next one that scores with it): loading costs more than scoring a batch of tiny models."""
    from ray_cluster.folders import materialize

    key = (model.uri, model.content_hash, max_len, threads, _stamp(materialize(model)))
    if _HELD.get("key") != key:
        _HELD.clear()
        _HELD.update(key=key, scorer=RewardScorer(model, max_len, threads))
    return getattr(_HELD["scorer"], method)(batch)


def score_on_ray(model: RemoteFolder, requests: list, *, batch_size: int, max_len: int, num_scorers: int,
                 cpus_per_scorer: float, use_gpu: bool, on_batch=None, method: str = "score") -> list:
    """Score every request (`method`: "score" for ScoreRequests at EOS, "score_steps" for StepScoreRequests at
    every step end), at most `num_scorers` batches at a time: on GPU each scorer an actor for this call; on CPU
    each batch a task in a worker process that keeps the model loaded (`score_batch`)."""
    import ray

    batches = [requests[i: i + batch_size] for i in range(0, len(requests), batch_size)]
    if not batches:
        return []
    if use_gpu:  # a GPU held by an idle worker would be lost to the next stage: actors, killed after the call
        actor_cls = ray.remote(RewardScorer).options(num_cpus=cpus_per_scorer, num_gpus=1)
        scorers = [actor_cls.remote(model, max_len, int(cpus_per_scorer)) for _ in range(min(num_scorers,
                                                                                            len(batches)))]
        submit = lambda slot, batch: getattr(scorers[slot], method).remote(batch)  # noqa: E731
    else:
        scorers = []
        task = ray.remote(score_batch).options(num_cpus=cpus_per_scorer, max_retries=1)
        submit = lambda slot, batch: task.remote(model, max_len, max(1, int(cpus_per_scorer)), method, batch)  # noqa: E731
    pending, results, queue = {}, [], list(reversed(batches))
    try:
        for slot in range(min(num_scorers, len(batches))):
            pending[submit(slot, queue.pop())] = slot
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            slot = pending.pop(done[0])
            batch_results = ray.get(done[0])
            results.extend(batch_results)
            if on_batch is not None:
                on_batch(len(batch_results))
            if queue:
                pending[submit(slot, queue.pop())] = slot
    finally:
        for scorer in scorers:
            ray.kill(scorer)
    return sorted(results, key=lambda r: r.row_index)
