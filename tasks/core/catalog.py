"""Finding artifacts by what they are rather than by key: the newest model of a given name, for scheduled
evaluations of "the latest model"."""
from __future__ import annotations

from prefect import task
from prefect.cache_policies import NONE

from tasks.core.stage_cache import StageContext
from tasks.core.store import ArtifactRef


@task(name="latest_model", cache_policy=NONE, task_run_name="latest_model[{stage}:{name}]")
def latest_model(stage: str, name: str | None, ctx: StageContext) -> ArtifactRef:
    """The newest committed artifact of `stage` (e.g. train_sft) whose manifest names it `name` (any if None)."""
    store = ctx.open_store()
    found = [m for m in store.list(stage) if name is None or m.get("metrics", {}).get("model_name") == name]
    if not found:
        names = sorted({m.get("metrics", {}).get("model_name") for m in store.list(stage)} - {None})
        raise LookupError(f"no {stage} artifact named {name!r} in {store.spec.url}; found names: {names}")
    newest = found[-1]
    return store.lookup(stage, newest["key"])
