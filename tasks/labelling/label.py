"""The label stage: a reward for every sample, from one or more labellers picked by name and combined by config.

    label:
      labellers: [{name: math_answer}]        # or the shorthand `labeller: math_answer`
      combine: product                         # product (WizardMath r = r_I · r_A) | weighted_sum
      threshold: null                          # reward := 1 if combined >= threshold else 0
      sandbox: {wall_seconds: 10, memory_mb: 1024}

Row labellers run as Ray tasks over chunks of samples (all cores, all nodes); reward models run on scorer
actors. A row that cannot be judged (missing field, non-string completion, empty program, a chunk that died)
gets a failure label with its reason; the stage always completes.
"""
from __future__ import annotations

from pathlib import Path

from prefect import task
from prefect.cache_policies import NONE
from pydantic import BaseModel, ConfigDict, Field, model_validator

from ray_cluster.connect import ensure_ray
from ray_cluster.parallel_map import ChunkFailed, map_chunks
from tasks.labelling.watchdog import Crashed, Timeout, map_bounded
from tasks.labelling import (label_code, label_gsm8k, label_instruction_reward, label_math,  # noqa: F401
                             label_process_reward, label_reward_model)  # (they register on import)
from tasks.labelling.labellers import (BATCH_LABELLERS, NEEDS_OPTION, ROW_LABELLERS, LabelOptions,
                                       ProcessRewardOptions, RewardModelOptions, SANDBOXED, failure_label,
                                       labels_schema)
from tasks.core.progress import progress_bar
from tasks.core.records import RecordSchema
from tasks.labelling.reward_combine import COMBINERS, threshold_reward
from tasks.labelling.sandbox import SandboxLimits, confinement
from tasks.core.stage_cache import StageContext, run_stage
from tasks.core.store import ArtifactRef
from tasks.core.tables import read_rows, write_records

# the LabelOptions fields that name a labeller's model (reward_model, process_reward, instruction_reward): what
# the registered model labellers declared they need, in a stable order
MODEL_OPTIONS = tuple(sorted(set(NEEDS_OPTION.values())))


class LabellerSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    weight: float = Field(default=1.0, description="its weight under combine: weighted_sum")


class LabelConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    labellers: list[LabellerSpec] = Field(default_factory=lambda: [LabellerSpec(name="math_answer")], min_length=1)
    combine: str = Field(default="product", description=f"how several rewards become one: {sorted(COMBINERS)}")
    threshold: float | None = Field(default=None, description="reward := 1 if combined >= threshold else 0")
    split: str = "train"
    sandbox: SandboxLimits = SandboxLimits()
    reward_model: RewardModelOptions | None = None
    process_reward: ProcessRewardOptions | None = Field(default=None, description="the process_reward labeller's "
                                                        "PRM (Math-Shepherd; models/process_reward.py)")
    instruction_reward: RewardModelOptions | None = Field(default=None, description="the instruction_reward "
                                                          "labeller's IRM (WizardMath's r_I)")
    chunk_size: int = Field(default=256, ge=1, description="samples per Ray task")
    chunk_timeout_s: float = Field(default=600, gt=0, description="a chunk still running after this is failed")
    sample_timeout_s: float = Field(default=60, gt=0, description="hard bound on labelling one sample (every "
                                    "labeller); over it, that sample alone fails with status label_timeout")
    max_failure_rate: float = Field(default=0.05, ge=0, le=1, description="share of samples that could not be "
                                    "judged (label_timeout, sandbox_error, chunk_failed) above which the stage "
                                    "fails instead of committing reward-0 labels")

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data):
        if isinstance(data, dict) and "labeller" in data:
            data = dict(data)
            data["labellers"] = [{"name": data.pop("labeller")}]
        return data

    @model_validator(mode="after")
    def _known(self):
        known = sorted(ROW_LABELLERS) + sorted(BATCH_LABELLERS)
        for spec in self.labellers:
            if spec.name not in known:
                raise ValueError(f"label.labellers: unknown labeller {spec.name!r}; known: {known}")
        if self.combine not in COMBINERS:
            raise ValueError(f"label.combine: unknown {self.combine!r}; known: {sorted(COMBINERS)}")
        if self.combine == "product" and any(s.weight != 1.0 for s in self.labellers):
            raise ValueError("label.labellers[].weight applies to combine: weighted_sum, not product")
        if self.sample_timeout_s <= self.sandbox.wall_seconds:
            raise ValueError(f"label.sample_timeout_s={self.sample_timeout_s} must exceed sandbox.wall_seconds="
                             f"{self.sandbox.wall_seconds}: a slow program is the sandbox's verdict, not a failure")
        for spec in self.labellers:
            option = NEEDS_OPTION.get(spec.name)
            if option is not None and getattr(self, option) is None:
                raise ValueError(f"label.{option} is required by the {spec.name} labeller (model folder, batch "
                                 "size)")
        return self

    def options(self) -> LabelOptions:
        return LabelOptions(sandbox=self.sandbox, **{field: getattr(self, field) for field in MODEL_OPTIONS})

    def model_reads(self) -> dict[str, str] | None:
        """The labellers' models given by location: part of the label stage's key by content (a reward model
        retrained in place gives new labels)."""
        reads = {field: getattr(self, field).model for field in MODEL_OPTIONS if getattr(self, field)}
        return reads or None

    def output_schema(self) -> RecordSchema:
        """The columns labels.parquet will have: what later stages can check their needs against at config
        time (e.g. `select.check_criteria_fields(criteria, label_cfg.output_schema().names)`)."""
        return labels_schema([s.name for s in self.labellers])


def label_row(names: list[str], completion, problem: dict | None, options: LabelOptions, where: str) -> list[dict]:
    """One sample through each row labeller; whatever goes wrong becomes that labeller's failure label."""
    labels = []
    for name in names:
        try:
            if problem is None:
                raise KeyError(f"{where}: its prompt_id is not among the problems")
            if not isinstance(completion, str):
                raise TypeError(f"{where}: completion is a {type(completion).__name__}, expected a string")
            labels.append(ROW_LABELLERS[name](completion, problem, options))
        except Exception as exc:  # a bad row is labelled with its reason, never fatal to the stage
            labels.append(failure_label(f"{where}: {type(exc).__name__}: {exc}"))
    return labels


def label_chunk(chunk: list[tuple[int, object, dict | None]], names: list[str], options: LabelOptions,
                sample_timeout_s: float | None = None) -> list:
    """Ray task body: [labels per row] for (row index, completion, problem) triples; with `sample_timeout_s`,
    each row bounded in a forked child (tasks/labelling/watchdog.py), a row over it failing alone."""
    def one(triple) -> list[dict]:
        index, text, problem = triple
        return label_row(names, text, problem, options, f"row {index}")

    if sample_timeout_s is None:
        return [one(triple) for triple in chunk]
    results = map_bounded(one, chunk, sample_timeout_s)
    return [result if isinstance(result, list) else [_unjudged(index, result)] * len(names)
            for (index, _, _), result in zip(chunk, results)]


def _unjudged(index: int, outcome: Timeout | Crashed) -> dict:
    if isinstance(outcome, Timeout):
        return failure_label(f"row {index}: labelling took over {outcome.seconds:g} s", status="label_timeout")
    return failure_label(f"row {index}: {outcome.reason}", status="label_error")


# statuses of samples the labellers could not judge (as opposed to judged wrong): their share is bounded
UNJUDGED = ("label_timeout", "sandbox_error", "chunk_failed")


def combine_labels(labels: dict[str, dict], cfg: LabelConfig) -> dict:
    """The row's output columns: the first labeller's fields, `reward_<name>` per labeller, and the combined
    reward / correct / error."""
    first = labels[cfg.labellers[0].name]
    rewards = [float(labels[s.name]["reward"]) for s in cfg.labellers]
    reward = threshold_reward(COMBINERS[cfg.combine](rewards, [s.weight for s in cfg.labellers]), cfg.threshold)
    verdicts = [labels[s.name].get("correct") for s in cfg.labellers if labels[s.name].get("correct") is not None]
    correct = reward >= 1.0 if cfg.threshold is not None else bool(verdicts) and all(verdicts)
    errors = [f"{name}: {lab['error']}" if len(labels) > 1 else lab["error"]
              for name, lab in labels.items() if lab.get("error")]
    return (first | {f"reward_{s.name}": float(labels[s.name]["reward"]) for s in cfg.labellers}
            | {"reward": float(reward), "correct": bool(correct), "error": "; ".join(errors) or None})


@task(name="label_rewards", retries=1, cache_policy=NONE, task_run_name="label_rewards[{name}]")
def label_rewards(
    name: str, samples: ArtifactRef, problems: ArtifactRef, cfg: LabelConfig, ctx: StageContext
) -> ArtifactRef:
    """labels.parquet: every sample row plus pred, correct, reward (and the labellers' own fields, error)."""

    # model-written code runs only under every confinement layer (or those the config explicitly waives): checked
    # here, before anything is read or any worker starts
    sandbox = confinement(cfg.sandbox) if SANDBOXED & {s.name for s in cfg.labellers} else None

    def compute(out: Path) -> dict:
        store = ctx.open_store()
        by_id = {row["id"]: row for row in read_rows(store, problems, cfg.split)}
        rows = read_rows(store, samples, "samples")
        per_labeller = _row_labels(rows, by_id, cfg, ctx) | _batch_labels(rows, by_id, cfg, ctx)
        labelled = []
        for index, row in enumerate(rows):
            combined = combine_labels({s.name: per_labeller[s.name][index] for s in cfg.labellers}, cfg)
            # a row generation could not produce (e.g. over-long prompt) keeps its reason
            if row.get("error"):
                combined["error"] = f"generation: {row['error']}; {combined['error'] or ''}".rstrip("; ")
            labelled.append(row | combined)
        unjudged = check_failure_rate(labelled, per_labeller, cfg)
        write_records(out / "labels.parquet", labelled, cfg.output_schema())
        n_correct = sum(r["correct"] for r in labelled)
        return {"rows": len(labelled), "correct": n_correct, "errors": sum(bool(r["error"]) for r in labelled),
                "unjudged": unjudged, "failure_rate": sum(unjudged.values()) / len(labelled) if labelled else 0.0,
                **({"sandbox": sandbox} if sandbox is not None else {}),
                "accuracy": n_correct / len(labelled) if labelled else 0.0,
                "mean_reward": sum(r["reward"] for r in labelled) / len(labelled) if labelled else 0.0}

    return run_stage(ctx, "label_rewards", cfg, {"samples": samples, "problems": problems}, compute,
                     reads=cfg.model_reads())


class LabellingFailed(RuntimeError):
    """Too many samples could not be judged: committing them as reward-0 labels would poison what trains on them."""


def check_failure_rate(rows: list[dict], per_labeller: dict[str, list[dict]], cfg: LabelConfig) -> dict[str, int]:
    """Counts of unjudged samples by status (any labeller), or LabellingFailed when their share is over
    `cfg.max_failure_rate`."""
    counts: dict[str, int] = {}
    for index in range(len(rows)):
        statuses = {labels[index].get("status") for labels in per_labeller.values()} & set(UNJUDGED)
        for status in sorted(statuses)[:1]:  # a sample counts once
            counts[status] = counts.get(status, 0) + 1
    share = sum(counts.values()) / len(rows) if rows else 0.0
    if share > cfg.max_failure_rate:
        raise LabellingFailed(f"{sum(counts.values())} of {len(rows)} samples ({share:.1%}) could not be judged "
                              f"({counts}); over label.max_failure_rate={cfg.max_failure_rate:.1%}, so nothing is "
                              "committed. Look at the sandbox (docs/labelling.md) or raise the limits")
    return counts


def _row_labels(rows: list[dict], by_id: dict[str, dict], cfg: LabelConfig, ctx: StageContext) -> dict[str, list]:
    names = [s.name for s in cfg.labellers if s.name in ROW_LABELLERS]
    if not names:
        return {}
    triples = [(i, row.get("text"), by_id.get(row.get("prompt_id"))) for i, row in enumerate(rows)]
    chunks = [triples[i: i + cfg.chunk_size] for i in range(0, len(triples), cfg.chunk_size)]
    ensure_ray(ctx.ray)
    with progress_bar("label " + "+".join(names), len(rows), ctx.show_progress, "samples") as bar:
        results = map_chunks(label_chunk, chunks, names, cfg.options(), cfg.sample_timeout_s,
                             timeout_s=cfg.chunk_timeout_s, on_done=lambda i, _: bar.advance(len(chunks[i])))
    per_row: list[list[dict]] = []
    for chunk, result in zip(chunks, results):
        if isinstance(result, ChunkFailed):
            reason = f"rows {chunk[0][0]}-{chunk[-1][0]}: labelling task failed: {result.reason}"
            result = [[failure_label(reason, status="chunk_failed")] * len(names) for _ in chunk]
        per_row.extend(result)
    return {name: [labels[k] for labels in per_row] for k, name in enumerate(names)}


def _batch_labels(rows: list[dict], by_id: dict[str, dict], cfg: LabelConfig, ctx: StageContext) -> dict[str, list]:
    if any(s.name in BATCH_LABELLERS for s in cfg.labellers):
        ensure_ray(ctx.ray)
    return model_labels(rows, by_id, cfg)


def model_labels(rows: list[dict], by_id: dict[str, dict], cfg: LabelConfig) -> dict[str, list]:
    """{name: a label per row} from every model (batch) labeller in the config, Ray already up (the label stage,
    and online RL's rewards: tasks/training/online_rl_steps.judge)."""
    options = cfg.options()
    return {s.name: BATCH_LABELLERS[s.name](rows, by_id, options) for s in cfg.labellers if s.name in BATCH_LABELLERS}
