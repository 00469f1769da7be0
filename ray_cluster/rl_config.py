"""What an online RL run is configured by: the rollouts, the algorithm's registered pieces, the optimiser, the
resources. The recipes (flows/grpo.py, flows/ppo.py) differ only in these defaults."""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from models.rl.advantages import ADVANTAGES
from models.rl.losses import AGGREGATIONS, KL_ESTIMATORS
from ray_cluster.engine_pool import PoolResources
from ray_cluster.generation import EngineSpec


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RolloutConfig(_Strict):
    prompts_per_iteration: int = Field(default=16, ge=1)
    group_size: int = Field(default=8, ge=1, description="samples per prompt (GRPO's G)")
    temperature: float = Field(default=1.0, gt=0)
    top_p: float = Field(default=1.0, gt=0, le=1)
    max_tokens: int = Field(default=160, ge=1)
    engine: EngineSpec = EngineSpec(logprobs_mode="processed_logprobs")
    pool: PoolResources = PoolResources()


class AdaptiveKLConfig(_Strict):
    target: float = Field(default=6.0, gt=0)
    horizon: int = Field(default=10000, ge=1)


class AlgorithmConfig(_Strict):
    advantage: str = Field(default="grpo", description=f"advantage estimator: {sorted(ADVANTAGES)}")
    aggregation: str = Field(default="seq_mean_token_mean", description=f"loss aggregation: {sorted(AGGREGATIONS)}")
    clip_low: float = Field(default=0.2, ge=0)
    clip_high: float = Field(default=0.2, ge=0, description="> clip_low is DAPO's clip-higher")
    kl_estimator: str = Field(default="k3", description=f"{sorted(KL_ESTIMATORS)}")
    kl_coef: float = Field(default=0.04, ge=0)
    kl_in: Literal["loss", "reward"] = Field(default="loss", description="GRPO: a loss term; PPO/InstructGPT: "
                                             "−β·KL in the per-token reward")
    adaptive_kl: AdaptiveKLConfig | None = None
    entropy_coef: float = Field(default=0.0, ge=0)
    missing_eos_penalty: float | None = Field(default=None, description="reward of a response that never "
                                              "emitted EOS (the N+ 'EOS trick'); None keeps its score")
    whiten_rewards: bool = Field(default=False, description="whiten scores per batch, mean kept (N+ details)")
    whiten_advantages: bool = Field(default=False, description="whiten advantages per batch (N+ details)")
    drop_uniform_groups: bool = Field(default=False, description="DAPO's dynamic sampling: groups whose "
                                      "samples all scored the same carry no signal and are dropped")
    gamma: float = 1.0
    lam: float = 0.95
    vf_coef: float = Field(default=0.1, ge=0)
    value_clip: float = Field(default=0.2, gt=0)

    @model_validator(mode="after")
    def _registered(self):
        ADVANTAGES.lookup(self.advantage), AGGREGATIONS.lookup(self.aggregation)
        KL_ESTIMATORS.lookup(self.kl_estimator)
        return self

    @property
    def needs_critic(self) -> bool:
        return self.advantage == "gae"


class RLOptimConfig(_Strict):
    lr: float = Field(default=1e-5, gt=0)
    critic_lr: float | None = Field(default=None, gt=0, description="the critic's (PPO); None: lr")
    epochs: int = Field(default=1, ge=1, description="passes over each batch of rollouts (PPO epochs)")
    minibatches: int = Field(default=1, ge=1, description="optimizer steps per pass")
    grad_clip: float = Field(default=1.0, gt=0)
    micro_batch_size: int | None = Field(default=None, ge=1, description="sequences per forward pass (gradient "
                                         "accumulation inside a minibatch; large vocabularies on GPU); None: all")
    warmup_updates: int = Field(default=0, ge=0)
    anneal: bool = Field(default=True, description="LR annealed to 0 over the run (N+ details)")
    weight_decay: float = 0.0


class TrainerResources(_Strict):
    num_cpus: float = Field(default=0, ge=0, description="CPUs Ray reserves for the trainer actor; 0 colocates it "
                            "with the engines (they take turns: generate, then train)")
    num_gpus: float = Field(default=0, ge=0)
    threads: int = Field(default=2, ge=1)


class OnlineRLConfig(_Strict):
    iterations: int = Field(default=40, ge=1, description="rollout → reward → update rounds")
    seed: int = 0
    checkpoint_every: int = Field(default=5, ge=1, description="iterations between checkpoints in the store")
    eval_every: int = Field(default=5, ge=1, description="iterations between held-out greedy checks (the curve)")
    eval_limit: int = Field(default=200, ge=1, description="held-out problems in each curve point")
    rollout: RolloutConfig = RolloutConfig()
    algorithm: AlgorithmConfig = AlgorithmConfig()
    optim: RLOptimConfig = RLOptimConfig()
    trainer: TrainerResources = TrainerResources()
    rm_times_labels: bool = Field(default=False, description="with a reward model: reward = RM score × the "
                                  "labellers' reward (WizardMath's product rI·rA); else the RM score alone")

    @property
    def old_logp_in_update(self) -> bool:
        """One optimiser step per batch of rollouts and no KL in the reward: the rollout-time log-probs are the
        update's own forward pass (same weights), so the trainer skips a separate pass for them (TRL does the
        same when num_iterations is 1); the sampler-vs-trainer metrics then come from the update."""
        return self.optim.epochs * self.optim.minibatches == 1 and (
            self.algorithm.kl_in == "loss" or self.algorithm.kl_coef == 0)
