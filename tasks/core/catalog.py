"""Finding artifacts by what they are rather than by key: the newest model of a given name, for scheduled
evaluations of "the latest model"."""
from __future__ import annotations

from prefect import task
from prefect.cache_policies import NONE

from tasks.core.stage_cache import StageContext
from tasks.core.store import ArtifactRef, ArtifactStore


def ancestors(store: ArtifactStore, stage: str, key: str) -> set[tuple[str, str]]:
    """Every artifact (stage, key) that went into this one, through its manifests' inputs, transitively."""
    seen: set[tuple[str, str]] = set()
    todo = [(stage, key)]
    while todo:
        manifest = store.read_manifest_at(*todo.pop()) or {}
        for ref in manifest.get("inputs", {}).values():
            node = (ref["stage"], ref["key"])
            if node not in seen:
                seen.add(node)
                todo.append(node)
    return seen


@task(name="latest_model", cache_policy=NONE, task_run_name="latest_model[{stage}:{name}]")
def latest_model(stage: str, name: str | None, ctx: StageContext, trained_on: ArtifactRef | None = None
                 ) -> ArtifactRef:
    """The newest committed artifact of `stage` (e.g. train_sft) whose manifest names it `name` (any if None)
    and, with `trained_on`, whose lineage (its training data and its tokenizer's) includes those problems: a
    model trained on other data, or with another tokenizer, would be scored on problems it was not made for."""
    store = ctx.open_store()
    found = [m for m in store.list(stage) if name is None or m.get("metrics", {}).get("model_name") == name]
    if not found:
        names = sorted({m.get("metrics", {}).get("model_name") for m in store.list(stage)} - {None})
        raise LookupError(f"no {stage} artifact named {name!r} in {store.spec.url}; found names: {names}")
    if trained_on is not None:
        matching = [m for m in found if _made_from(store, m, trained_on)]
        if not matching:
            raise LookupError(f"the newest {stage} artifact named {name!r} ({found[-1]['key'][:12]}) and the "
                              f"{len(found) - 1} before it were not trained on {trained_on.short} (their lineage "
                              "names other problems or another tokenizer); evaluate them with the data config "
                              "they were trained with")
        found = matching
    return store.lookup(stage, found[-1]["key"])


def _made_from(store: ArtifactStore, manifest: dict, problems: ArtifactRef) -> bool:
    target = (problems.stage, problems.key)
    if target not in ancestors(store, manifest["stage"], manifest["key"]):
        return False
    tokenizer = manifest.get("inputs", {}).get("tokenizer")
    # a pretrained model's folder is its own tokenizer (no problems behind it): then the data check suffices
    if tokenizer is None or tokenizer["stage"] != "build_tokenizer":
        return True
    return target in ancestors(store, tokenizer["stage"], tokenizer["key"])
