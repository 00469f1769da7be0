"""Instruction-reward labeller (WizardMath's IRM, r_I): how well-posed the instruction is — its definition,
precision and integrity — scored by a reward model (models/reward_model.py, read at EOS) over the question
alone, squashed to (0, 1) so the `product` combiner gives RLEIF's r = r_I · r_A. Each problem is scored once,
however many samples answer it."""
from __future__ import annotations

import math

import pyarrow as pa

from ray_cluster.folders import RemoteFolder
from ray_cluster.reward_scorer import ScoreRequest, score_on_ray
from tasks.labelling.labellers import LabelOptions, failure_label, register_batch_labeller


def instruction_text(problem: dict) -> str | None:
    """What the IRM reads: the question as written (the `question` column), else the rendered prompt."""
    text = problem.get("question") if isinstance(problem.get("question"), str) else problem.get("prompt")
    return text if isinstance(text, str) and text.strip() else None


@register_batch_labeller("instruction_reward", fields={"instruction_score": pa.float64()}, answers=False,
                         needs="instruction_reward")
def label_with_instruction_reward(rows: list[dict], problems: dict[str, dict], options: LabelOptions) -> list[dict]:
    """reward = σ(IRM score of the row's question) in (0, 1); `instruction_score` keeps the raw score."""
    irm = options.instruction_reward
    ids = sorted({row.get("prompt_id") for row in rows if instruction_text(problems.get(row.get("prompt_id"), {}))})
    results = score_on_ray(RemoteFolder(uri=irm.model),
                           [ScoreRequest(i, instruction_text(problems[pid])) for i, pid in enumerate(ids)],
                           batch_size=irm.batch_size, max_len=irm.max_len, num_scorers=irm.num_scorers,
                           cpus_per_scorer=irm.cpus_per_scorer, use_gpu=irm.use_gpu)
    score = {ids[r.row_index]: r.reward for r in results}
    return [{"reward": 1 / (1 + math.exp(-score[row["prompt_id"]])), "correct": None, "pred": None,
             "status": "scored", "error": None, "instruction_score": score[row["prompt_id"]]}
            if row.get("prompt_id") in score else
            failure_label(f"row {index}: no problem with a question for {row.get('prompt_id')!r}")
            for index, row in enumerate(rows)]
