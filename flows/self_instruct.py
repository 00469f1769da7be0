"""Self-Instruct (Wang et al. 2023) as Alpaca runs it (Taori et al. 2023): a pool of hand-written seed tasks → for
R rounds, k pool tasks go into a few-shot prompt and a teacher writes new instructions → an instruction joins the
pool only if it passes the simple filters (length, banned keywords, leading punctuation or non-English character,
duplicates) and its ROUGE-L against every pool instruction is below 0.7 → the teacher responds to every kept
instruction → the (instruction, response) pairs are an SFT dataset → a student is fine-tuned on it."""
from __future__ import annotations

from prefect import flow
from pydantic import Field, model_validator

from flows.base import FlowConfig, FlowResult, finish_run, start_run
from ray_cluster.generation import SamplingSpec
from tasks.data.hf_source import DatasetConfig
from tasks.data.import_model import GGUFModelConfig
from tasks.data.model_source import ModelConfig, import_model
from tasks.data.prepare_dataset import load_dataset
from tasks.generation.generate import GenerateConfig, sample_completions
from tasks.instructions import sections  # noqa: F401  (the instruction dataset's report section)
from tasks.instructions.self_instruct import PromptingConfig
from tasks.instructions.self_instruct_stages import (KeepConfig, SeedTasksConfig, instruction_dataset,
                                                     instruction_prompts, keep_instructions, seed_tasks)
from tasks.training.train import SFTConfig, SFTSource, train_sft


class SelfInstructConfig(FlowConfig):
    title: str = "Self-Instruct"
    seeds: SeedTasksConfig = SeedTasksConfig()
    dataset: DatasetConfig | None = Field(default=None, description="its questions (and written solutions) join "
                                          "the seed tasks")
    teacher_name: str = "teacher"
    teacher: ModelConfig = Field(default=ModelConfig(gguf=GGUFModelConfig()),
                                 description="writes instructions and responses (default: packaged SmolLM2 GGUF)")
    rounds: int = Field(default=1, ge=1, description="generation rounds; kept instructions join the pool")
    prompting: PromptingConfig = PromptingConfig()
    instruction_sample: GenerateConfig = GenerateConfig(split="train", sampling=SamplingSpec(
        n=1, temperature=0.7, top_p=0.95, max_tokens=96))
    keep: KeepConfig = KeepConfig()
    response_sample: GenerateConfig = GenerateConfig(split="train", sampling=SamplingSpec(n=1, max_tokens=256))
    include_seeds: bool = Field(default=False, description="train the student on the seed pairs too (Alpaca "
                                "trains on the generated data only)")
    student_name: str = "student"
    student: ModelConfig = Field(default=ModelConfig(gguf=GGUFModelConfig()), description="the model fine-tuned")
    sft: SFTConfig = SFTConfig()

    @model_validator(mode="after")
    def _train_split(self):
        for name in ("instruction_sample", "response_sample"):
            if getattr(self, name).split != "train":
                raise ValueError(f"{name}.split must be 'train' (the table the stages write)")
        if self.response_sample.sampling.n != 1:
            raise ValueError("response_sample.sampling.n must be 1: one response per instruction is read")
        return self


@flow(name="self_instruct", log_prints=True)
def self_instruct(cfg: SelfInstructConfig) -> FlowResult:
    ctx = start_run(cfg)
    problems = load_dataset(cfg.dataset, ctx) if cfg.dataset else None
    teacher = {cfg.teacher_name: import_model(cfg.teacher_name, cfg.teacher, ctx)}
    pool = seed_tasks(cfg.seeds, problems, ctx)
    rounds = []
    for r in range(1, cfg.rounds + 1):
        prompts = instruction_prompts(f"round{r}", pool, r, cfg.prompting, ctx)
        written = sample_completions(f"instructions{r}", prompts, teacher, cfg.instruction_sample, ctx)
        pool = keep_instructions(f"round{r}", pool, written, r, cfg.keep, ctx)
        rounds.append(pool)
    responses = sample_completions("responses", pool, teacher, cfg.response_sample, ctx)
    data = instruction_dataset(rounds, responses, cfg.include_seeds, cfg.keep.respond, ctx)
    student = import_model(cfg.student_name, cfg.student, ctx)
    model = train_sft(cfg.student_name, [SFTSource(ref=data, split="train")], student, student, cfg.sft, ctx)
    return finish_run("self_instruct", cfg, ctx, outputs={"dataset": data, "student": model})
