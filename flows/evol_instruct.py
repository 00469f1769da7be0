"""Evol-Instruct (Xu et al. 2023, WizardLM; Luo et al. 2023, WizardMath): seed questions → for R rounds, a teacher
rewrites each pool question by an operation (upward: add constraints, concretise, deepen, more reasoning steps,
complicate the input; downward: easier) → the rewrites that add nothing, copy the evolution prompt or are too short
are eliminated → the teacher answers the survivors → those it cannot answer are eliminated → the kept questions,
with their answers and lineage, seed the next round → every round's kept questions are the evolved dataset."""
from __future__ import annotations

from prefect import flow
from pydantic import Field, model_validator

from flows.base import FlowConfig, FlowResult, finish_run, start_run
from ray_cluster.generation import SamplingSpec
from tasks.data.hf_source import DatasetConfig
from tasks.data.import_model import GGUFModelConfig
from tasks.data.model_source import ModelConfig, import_model
from tasks.data.prepare import TinyArithConfig, make_tiny_arith
from tasks.data.prepare_dataset import load_dataset
from tasks.generation.generate import GenerateConfig, sample_completions
from tasks.instructions import sections  # noqa: F401  (the evolved dataset's report section)
from tasks.instructions.elimination import EliminationConfig
from tasks.instructions.evol_stages import (AnswerPromptConfig, EvolveConfig, SeedConfig, eliminate_evolved,
                                            evolution_prompts, evolved_dataset, screen_evolved, seed_pool)


class EvolInstructConfig(FlowConfig):
    title: str = "Evol-Instruct"
    data: TinyArithConfig = Field(default=TinyArithConfig(n_train=8, n_test=1), description="seed questions from "
                                  "the embedded task (when no dataset)")
    dataset: DatasetConfig | None = Field(default=None, description="seed questions from your data or a built-in")
    seeds: SeedConfig = SeedConfig()
    teacher_name: str = "teacher"
    teacher: ModelConfig = Field(default=ModelConfig(gguf=GGUFModelConfig()),
                                 description="the model that evolves and answers (default: packaged SmolLM2 GGUF)")
    rounds: int = Field(default=2, ge=1, description="evolution rounds; each round's survivors seed the next")
    evolve: EvolveConfig = EvolveConfig()
    evolve_sample: GenerateConfig = GenerateConfig(split="train", sampling=SamplingSpec(
        n=1, temperature=0.7, top_p=0.95, max_tokens=128))
    elimination: EliminationConfig = EliminationConfig()
    answer: AnswerPromptConfig = AnswerPromptConfig()
    answer_sample: GenerateConfig = GenerateConfig(split="train", sampling=SamplingSpec(n=1, max_tokens=256))

    @model_validator(mode="after")
    def _one_sample_each(self):
        # one rewrite per (question, operation) and one answer per question: more would be generated and unread
        for name in ("evolve_sample", "answer_sample"):
            block = getattr(self, name)
            if block.sampling.n != 1 or block.split != "train":
                raise ValueError(f"{name}: sampling.n must be 1 and split 'train' (got n={block.sampling.n}, "
                                 f"split={block.split!r}); run more operations per question with "
                                 "evolve.per_question instead")
        return self


@flow(name="evol_instruct", log_prints=True)
def evol_instruct(cfg: EvolInstructConfig) -> FlowResult:
    ctx = start_run(cfg)
    problems = load_dataset(cfg.dataset, ctx) if cfg.dataset else make_tiny_arith(cfg.data, ctx)
    teacher = {cfg.teacher_name: import_model(cfg.teacher_name, cfg.teacher, ctx)}
    pool = seed_pool(problems, cfg.seeds, ctx)
    rounds = []
    for r in range(1, cfg.rounds + 1):
        prompts = evolution_prompts(f"round{r}", pool, r, cfg.evolve, ctx)
        evolved = sample_completions(f"evolve{r}", prompts, teacher, cfg.evolve_sample, ctx)
        screened = screen_evolved(f"round{r}", prompts, evolved, cfg.elimination, cfg.answer, ctx)
        answers = sample_completions(f"answer{r}", screened, teacher, cfg.answer_sample, ctx)
        pool = eliminate_evolved(f"round{r}", pool, screened, answers, cfg.elimination, ctx)
        rounds.append(pool)
    dataset = evolved_dataset(rounds, ctx)
    return finish_run("evol_instruct", cfg, ctx, outputs={"dataset": dataset} | teacher)
