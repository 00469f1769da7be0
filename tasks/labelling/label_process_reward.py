"""Process-reward labeller (Lightman et al. 2023; Math-Shepherd): every step of a completion scored by a PRM
(models/process_reward.py) on Ray scorer actors, the reward one aggregate of the step scores (min, product or
last, by config). A completion's steps are cut as the PRM's training data was (tasks/labelling/steps.py)."""
from __future__ import annotations

import pyarrow as pa

from models.process_reward import STEP_AGGREGATES
from ray_cluster.folders import RemoteFolder
from ray_cluster.reward_scorer import StepScoreRequest, score_on_ray
from tasks.labelling.labellers import LabelOptions, failure_label, register_batch_labeller, scorable
from tasks.labelling.steps import split_steps


@register_batch_labeller("process_reward", fields={"step_scores": pa.list_(pa.float64())}, answers=False,
                         needs="process_reward")
def label_with_process_reward(rows: list[dict], problems: dict[str, dict], options: LabelOptions) -> list[dict]:
    """reward = aggregate(P(step good) per step); `step_scores` keeps them all. `correct` is left to answer
    labellers (None). A row without a prompt, text or any step that fits the PRM's context gets a failure label."""
    prm = options.process_reward
    labels, todo = scorable(rows, problems, allow_empty=False)  # an empty completion has no step to score
    requests = [StepScoreRequest(index, problem["prompt"], tuple(split_steps(text, prm.steps)))
                for index, problem, text in todo]
    results = score_on_ray(RemoteFolder(uri=prm.model), requests, batch_size=prm.batch_size, max_len=prm.max_len,
                           num_scorers=prm.num_scorers, cpus_per_scorer=prm.cpus_per_scorer, use_gpu=prm.use_gpu,
                           method="score_steps")
    aggregate = STEP_AGGREGATES[prm.aggregate]
    for result in results:
        scores = list(result.step_scores)
        labels[result.row_index] = (failure_label(f"row {result.row_index}: no step fits max_len={prm.max_len}")
                                    if not scores else
                                    {"reward": float(aggregate(scores)), "correct": None, "pred": None,
                                     "status": "scored", "error": None, "step_scores": scores})
    return labels  # type: ignore[return-value]
