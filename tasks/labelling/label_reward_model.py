"""Reward-model labeller (InstructGPT): score prompt + completion with a reward model on Ray scorer actors,
the reward read at the EOS token (models/reward_model.py)."""
from __future__ import annotations

from ray_cluster.folders import RemoteFolder
from ray_cluster.reward_scorer import ScoreRequest, score_on_ray
from tasks.labelling.labellers import LabelOptions, register_batch_labeller, scorable


@register_batch_labeller("reward_model", fields={}, answers=False, needs="reward_model")  # the reward only: no fields of its own
def label_with_reward_model(rows: list[dict], problems: dict[str, dict], options: LabelOptions) -> list[dict]:
    """reward = the model's scalar; `correct` is left to answer/test labellers (None here). Rows without a
    prompt or a string completion get a failure label and are not sent to the model."""
    rm = options.reward_model
    labels, todo = scorable(rows, problems)
    requests = [ScoreRequest(index, problem["prompt"] + text) for index, problem, text in todo]
    results = score_on_ray(RemoteFolder(uri=rm.model), requests, batch_size=rm.batch_size, max_len=rm.max_len,
                           num_scorers=rm.num_scorers, cpus_per_scorer=rm.cpus_per_scorer, use_gpu=rm.use_gpu)
    for result in results:
        labels[result.row_index] = {"reward": result.reward, "correct": None, "pred": None, "status": "scored",
                                    "error": None}
    return labels  # type: ignore[return-value]
