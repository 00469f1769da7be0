"""Problems the policy never trains on, for its verifiers (Cobbe et al. 2021 train the generator only 2 epochs so
that its samples on training problems still show the errors it makes on new ones). A share of the training
problems moves to a `verifier` table, chosen by a hash of each problem id; the policy's SFT reads `train`, the
verifiers' solutions are sampled on `verifier`, and `test` stays as it was, so no held-out problem is touched."""
from __future__ import annotations

from pathlib import Path

from prefect import task
from prefect.cache_policies import NONE
from pydantic import BaseModel, ConfigDict, Field

from tasks.core.stage_cache import StageContext, run_stage
from tasks.core.store import ArtifactRef
from tasks.core.tables import read_rows, write_rows
from tasks.selection.preferences import heldout


class HoldoutConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    share: float = Field(default=0.5, ge=0, lt=1, description="share of the training problems moved to `verifier`; "
                         "0: none, `verifier` is a copy of `train` (the verifiers learn on the policy's own "
                         "problems: a smoke run's tiny policy solves no others)")
    seed: int = 0


@task(name="hold_out_problems", retries=1, cache_policy=NONE, task_run_name="hold_out_problems[{name}]")
def hold_out_problems(name: str, problems: ArtifactRef, cfg: HoldoutConfig, ctx: StageContext) -> ArtifactRef:
    """The problems artifact with `train` cut in two: `train` (the policy's) and `verifier` (never the policy's)."""

    def compute(out: Path) -> dict:
        store = ctx.open_store()
        train = read_rows(store, problems, "train")
        # the preference split's stable hash of (seed, id): reruns and resumed runs split alike
        verifier = [r for r in train if heldout(r["id"], cfg.share, cfg.seed)] if cfg.share else train
        policy = [r for r in train if not heldout(r["id"], cfg.share, cfg.seed)]
        if not verifier or not policy:
            raise ValueError(f"problems {problems.short}: share={cfg.share} of {len(train)} training problems leaves "
                             f"{len(policy)} for the policy and {len(verifier)} for its verifiers; both need some")
        write_rows(out / "train.parquet", policy)
        write_rows(out / "verifier.parquet", verifier)
        write_rows(out / "test.parquet", read_rows(store, problems, "test"))
        return {"train": len(policy), "verifier": len(verifier)}

    return run_stage(ctx, "hold_out_problems", cfg, {"problems": problems}, compute)
