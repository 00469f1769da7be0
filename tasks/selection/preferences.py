"""Preference data from labelled samples: (chosen, rejected) pairs for reward models and DPO, and score-ranked
response groups for RRTF, with a held-out split by prompt."""
from __future__ import annotations

import hashlib
from collections import defaultdict
from pathlib import Path

from prefect import task
from prefect.cache_policies import NONE
from pydantic import BaseModel, ConfigDict, Field, field_validator

from tasks.core.records import BEST_RESPONSES, PREFERENCE_GROUPS, PREFERENCE_PAIRS, prompt_columns
from tasks.core.stage_cache import StageContext, run_stage
from tasks.core.store import ArtifactRef
from tasks.core.tables import read_rows, write_records
from tasks.labelling.label import UNJUDGED
from tasks.selection.select import CRITERIA, registered_criteria


class PreferenceConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    split: str = Field(default="train", description="the problems table the samples answered")
    max_pairs_per_prompt: int = Field(default=4, ge=1)
    max_group_size: int = Field(default=8, ge=2, description="responses per RRTF group")
    heldout_fraction: float = Field(default=0.2, ge=0, lt=1, description="prompts kept for evaluation")
    seed: int = 0
    chosen_criteria: list[str] = Field(default_factory=list, description="rejection criteria a correct sample must "
                                       "also pass to be preferred (valid_calculations, grounded_calculations): a "
                                       "lucky final answer over wrong arithmetic is neither chosen nor rejected")

    @field_validator("chosen_criteria")
    @classmethod
    def _registered(cls, names: list[str]) -> list[str]:
        return registered_criteria(names)


def trusted(samples: list[dict], criteria: list[str]) -> list[dict]:
    """One prompt's samples without the correct ones that fail `criteria` (issue 15: on tiny-arith most
    "correct" samples reached the answer through wrong arithmetic, and pairs of them taught a reward model noise)."""
    kept = [s for s in samples if s["correct"]]
    for name in criteria:
        kept = CRITERIA[name](kept)
    good = {id(s) for s in kept}
    return [s for s in samples if not s["correct"] or id(s) in good]


def judged(samples: list[dict]) -> list[dict]:
    """One prompt's samples without those the labellers could not judge (a timeout, a sandbox failure): an unrun
    program is no evidence either way, so it must be neither a rejected response nor a low-ranked one."""
    return [s for s in samples if s.get("status") not in UNJUDGED]


def heldout(prompt_id: str, fraction: float, seed: int) -> bool:
    """A stable split by prompt: all pairs of one prompt land on the same side."""
    digest = hashlib.sha256(f"{seed}:{prompt_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < fraction


def preference_pairs(samples: list[dict], max_pairs: int) -> list[tuple[str, str]]:
    """(chosen, rejected) texts of one prompt: distinct correct vs distinct incorrect completions, paired in
    sample order; empty completions (a generation that failed) are never used."""
    good, bad = [], []
    for s in sorted(samples, key=lambda s: s["sample_index"]):
        if not isinstance(s.get("text"), str) or not s["text"].strip():
            continue
        target = good if s["correct"] else bad
        if s["text"] not in target:
            target.append(s["text"])
    return [(good[i % len(good)], bad[i % len(bad)]) for i in range(min(max_pairs, max(len(good), len(bad))))
            ] if good and bad else []


def ranked_group(samples: list[dict], size: int) -> list[tuple[str, float]]:
    """Up to `size` distinct responses of one prompt with their rewards, best first (stable on ties)."""
    seen, group = set(), []
    for s in sorted(samples, key=lambda s: (-float(s["reward"]), s["sample_index"])):
        if isinstance(s.get("text"), str) and s["text"].strip() and s["text"] not in seen:
            seen.add(s["text"])
            group.append((s["text"], float(s["reward"])))
    return group[:size]


@task(name="make_preferences", retries=1, cache_policy=NONE, task_run_name="make_preferences[{name}]")
def make_preferences(name: str, labels: ArtifactRef, problems: ArtifactRef, cfg: PreferenceConfig,
                     ctx: StageContext) -> ArtifactRef:
    """pairs_{train,test}.parquet (prompt, chosen, rejected), groups_{train,test}.parquet (prompt, texts,
    scores) and best_{train,test}.parquet (each group's best response as an SFT row: the data of RRTF's
    fine-tuning term alone, for its compute-matched control), split by prompt."""

    def compute(out: Path) -> dict:
        store = ctx.open_store()
        prompts = {r["id"]: prompt_columns(r) for r in read_rows(store, problems, cfg.split)}
        by_prompt: dict[str, list[dict]] = defaultdict(list)
        for row in read_rows(store, labels, "labels"):
            by_prompt[row["prompt_id"]].append(row)
        tables: dict[str, list[dict]] = {f"{kind}_{side}": [] for kind in ("pairs", "groups", "best")
                                         for side in ("train", "test")}
        unjudged = 0
        for pid, samples in sorted(by_prompt.items()):
            kept = judged(samples)
            unjudged += len(samples) - len(kept)
            samples = trusted(kept, cfg.chosen_criteria)
            side = "test" if heldout(pid, cfg.heldout_fraction, cfg.seed) else "train"
            for chosen, rejected in preference_pairs(samples, cfg.max_pairs_per_prompt):
                tables[f"pairs_{side}"].append({"prompt_id": pid, **prompts[pid], "chosen": chosen,
                                                "rejected": rejected})
            group = ranked_group(samples, cfg.max_group_size)
            if len({score for _, score in group}) > 1:  # all-equal scores teach a ranking nothing
                tables[f"groups_{side}"].append({"prompt_id": pid, **prompts[pid],
                                                 "texts": [t for t, _ in group], "scores": [s for _, s in group]})
                tables[f"best_{side}"].append({"prompt_id": pid, **prompts[pid], "completion": group[0][0],
                                               "score": group[0][1]})
        schemas = {"pairs": PREFERENCE_PAIRS, "groups": PREFERENCE_GROUPS, "best": BEST_RESPONSES}
        for table, rows in tables.items():
            write_records(out / f"{table}.parquet", rows, schemas[table.split("_")[0]])
        return {table: len(rows) for table, rows in tables.items()} | {"prompts": len(by_prompt), "unjudged": unjudged}

    return run_stage(ctx, "make_preferences", cfg, {"labels": labels, "problems": problems}, compute)
