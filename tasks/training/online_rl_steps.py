"""The steps of one online-RL iteration (tasks/training/online_rl.py): which prompts, rollouts on the engines,
rewards from the labellers, advantages, and the run's final artifact. Actors compute; these functions move
their results between them; the stage persists."""
from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from models.rl.advantages import ADVANTAGES, AdvantageConfig, AdvantageInputs
from models.rl.batch import pack
from ray_cluster.rl_config import OnlineRLConfig
from models.rl.losses import KL_ESTIMATORS, masked_mean, missing_eos_penalty, shaped_token_rewards, whiten
from models.sft_data import prompt_format
from ray_cluster.folders import RemoteFolder
from ray_cluster.generation import PromptRecord, SamplingSpec, TokenSample, prompt_seed
from tasks.labelling.label import LabelConfig, combine_labels, label_chunk, model_labels
from tasks.labelling.labellers import ROW_LABELLERS


@dataclass
class Actors:
    """The run's long-lived actors: rollout engines and the trainer, plus the tokenizer and encoded prompts."""

    engines: list
    trainer: object
    tokenizer: object
    encoded: dict[str, list[int]]  # problem id → prompt token ids (as every backend encodes them)
    pad_id: int
    max_tokens: int
    critic: object | None = None  # PPO's value model
    scorer: object | None = None  # a reward model read at EOS (InstructGPT's reward)
    warm: tuple | None = None  # (engine spec, threads) when the engines came from, and go back to, the kept set

    @property
    def learners(self) -> dict:
        return {"trainer": self.trainer} | ({"critic": self.critic} if self.critic is not None else {})

    def sync_weights(self) -> float:
        """Trainer → every engine, in place; the seconds it took (recorded each iteration)."""
        import ray

        started = time.time()
        # the trainer's result is already an object in Ray's store: every engine reads that one, the driver never
        # holds a copy
        weights = self.trainer.weights.remote()
        ray.get([engine.update_weights.remote(weights) for engine in self.engines])
        return time.time() - started

    def restore(self, saved: dict[str, dict]) -> None:
        import ray

        ray.get([actor.restore.remote(saved[name]["weights"], saved[name]["state"])
                 for name, actor in self.learners.items()])
        self.sync_weights()

    def learner_state(self) -> dict[str, dict]:
        """{role: {"weights", "state"}} of the trainer (and critic): what a checkpoint holds."""
        import ray

        return {name: dict(zip(("weights", "state"), ray.get([a.weights.remote(), a.state.remote()])))
                for name, a in self.learners.items()}

    def update(self, batch: "RLBatch", kl_coef: float, seed: int) -> dict:
        """The policy step and, with a critic, the value step on the same rollouts (in parallel)."""
        import ray

        calls = [self.trainer.update.remote(batch.tensors, batch.advantages, batch.old_logp, batch.ref_logp,
                                            kl_coef, seed)]
        if self.critic is not None:
            calls.append(self.critic.update.remote(batch.tensors, batch.returns, batch.values, seed))
        stats = {k: v for result in ray.get(calls) for k, v in result.items()}
        if batch.old_logp is None:  # the update's own pass gave the rollout-time log-probs
            batch.old_logp = stats.pop("old_logp")
            batch.metrics |= trainer_logp_metrics(batch)
        return stats

    def close(self, finished: bool = False) -> None:
        """Engines of a finished run go back to the kept set (ray_cluster/warm_engines.py) when they came from
        it; any other engines, and the learners, end here."""
        import ray

        from ray_cluster import warm_engines

        if finished and self.warm is not None:
            warm_engines.keep(self.engines, *self.warm)
        else:
            warm_engines.close(self.engines)
        for actor in [self.trainer, self.critic, self.scorer]:
            if actor is not None:
                ray.kill(actor, no_restart=True)


def start_actors(folder: RemoteFolder, local: Path, problems: list[dict], cfg: OnlineRLConfig, ctx,
                 critic_init: RemoteFolder | None = None, reward_model: RemoteFolder | None = None) -> Actors:
    """Encode every prompt (an over-long one fails here, naming its row, before any actor starts), then start the
    engines and the trainer with the resources the config gives them."""
    import ray
    from transformers import AutoConfig, AutoTokenizer

    from models.sft_data import encode_prompt
    from ray_cluster.connect import ensure_ray
    from ray_cluster.policy_trainer import PolicyTrainer

    tokenizer = AutoTokenizer.from_pretrained(local)
    context = cfg.rollout.engine.max_model_len or AutoConfig.from_pretrained(local).max_position_embeddings
    encoded = {}
    for i, row in enumerate(problems):
        ids = encode_prompt(tokenizer, row["prompt"], **prompt_format(row))
        if len(ids) >= context:
            raise ValueError(f"problem row {i} (id {row['id']!r}): prompt has {len(ids)} tokens; the model's "
                             f"context is {context}")
        encoded[row["id"]] = ids
    ensure_ray(ctx.ray)
    engines, warm, loading = _engines(folder, cfg)
    trainer = ray.remote(PolicyTrainer).options(num_cpus=cfg.trainer.num_cpus, num_gpus=cfg.trainer.num_gpus
                                                ).remote(folder, cfg)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    side = dict(num_cpus=cfg.trainer.num_cpus, num_gpus=cfg.trainer.num_gpus)
    critic = scorer = None
    if cfg.algorithm.needs_critic:
        from ray_cluster.critic import ValueCritic

        # the N+ details: the critic starts from the reward model when there is one
        critic = ray.remote(ValueCritic).options(**side).remote(critic_init or folder, critic_init is not None, cfg)
    if reward_model is not None:
        from ray_cluster.reward_scorer import RewardScorer

        scorer = ray.remote(RewardScorer).options(**side).remote(reward_model, context, cfg.trainer.threads)
    actors = Actors(engines, trainer, tokenizer, encoded, pad, cfg.rollout.max_tokens, critic, scorer, warm)
    try:
        ray.get(loading)  # after every actor was asked for: the learners start while the engines load
    except BaseException:
        actors.close()
        raise
    return actors


def _engines(folder: RemoteFolder, cfg: OnlineRLConfig) -> tuple[list, tuple | None, list]:
    """The rollout engines, holding the starting policy. CPU engines come from the driver's kept set (an RL stage
    after another one with the same engine spec, e.g. the next seed, starts no engine: ~11 s of vLLM start-up
    each on this machine) and load the policy in place; GPU engines, or `keep_warm: false`, start here.
    Returns (engines, the kept set's key or None, the loads to wait for)."""
    import ray

    from ray_cluster import warm_engines
    from ray_cluster.engine_pool import GenerationEngine

    pool, spec = cfg.rollout.pool, cfg.rollout.engine
    if pool.keep_warm and pool.gpus_per_engine == 0:
        engines = warm_engines.take(folder, "policy", spec, pool.cpus_per_engine, 0, pool.num_engines)
        # a kept engine holds another policy (the last run's final one); a fresh one loads nothing again
        return engines, (spec, pool.cpus_per_engine), [engine.load.remote(folder, "policy") for engine in engines]
    engine_cls = ray.remote(GenerationEngine).options(num_cpus=pool.cpus_per_engine, num_gpus=pool.gpus_per_engine)
    engines = [engine_cls.remote(folder, "policy", spec, pool.cpus_per_engine) for _ in range(pool.num_engines)]
    return engines, None, [engine.ping.remote() for engine in engines]


def prompt_order(rows: list[dict], seed: int, start: int, count: int) -> list[dict]:
    """Rows at positions [start, start + count) of an endless stream of epochs, each a fresh shuffle by
    (seed, epoch): a pure function of the position, so a resumed run takes exactly the prompts it would have,
    and a batch that crosses an epoch boundary takes the next epoch's first rows (nothing skipped or repeated)."""
    n, picked = len(rows), []
    for position in range(start, start + count):
        epoch, offset = divmod(position, n)
        order = list(range(n))
        random.Random(f"{seed}:{epoch}").shuffle(order)
        picked.append(rows[order[offset]])
    return picked


def _split(items: list, parts: int) -> list[list[int]]:
    size = -(-len(items) // parts)
    return [list(range(i, min(i + size, len(items)))) for i in range(0, len(items), size)]


def rollout(actors: Actors, problems: list[dict], cfg: OnlineRLConfig, seed: int) -> list[list[TokenSample]]:
    """G samples per problem, the problems spread over the engines; in problem order."""
    import ray

    r = cfg.rollout
    sampling = SamplingSpec(n=r.group_size, temperature=r.temperature, top_p=r.top_p, max_tokens=r.max_tokens)
    chunks = _split(problems, len(actors.engines))
    calls = [engine.sample_tokens.remote([actors.encoded[problems[i]["id"]] for i in chunk], sampling,
                                         [prompt_seed(seed, problems[i]["id"]) for i in chunk])
             for engine, chunk in zip(actors.engines, chunks)]
    return [group for result in ray.get(calls) for group in result]


def judge(triples: list[tuple[int, str, dict]], label: LabelConfig) -> list[dict]:
    """(index, text, problem) → one combined label each: row labellers bound every sample by
    `label.sample_timeout_s`; model labellers (a PRM, an IRM: tasks/labelling/labellers.py) score the batch on
    scorer actors; then the config's combination (RLEIF: r = r_I · r_A with `combine: product`)."""
    names = [spec.name for spec in label.labellers]
    rows = [name for name in names if name in ROW_LABELLERS]
    per: dict[str, list[dict]] = {}
    if rows:
        results = label_chunk(triples, rows, label.options(), label.sample_timeout_s)
        per |= {name: [labels[k] for labels in results] for k, name in enumerate(rows)}
    samples = [{"prompt_id": problem["id"], "text": text} for _, text, problem in triples]
    per |= model_labels(samples, {problem["id"]: problem for _, _, problem in triples}, label)
    return [combine_labels({name: per[name][i] for name in names}, label) for i in range(len(triples))]


def label_samples(actors: Actors, problems: list[dict], samples: list[list[TokenSample]], label: LabelConfig,
                  rm_times_labels: bool = False) -> list[dict]:
    """One combined label per sample (problem-major), each bounded by `label.sample_timeout_s`: a verifier
    that hangs fails that sample alone (status label_timeout, reward 0), never the step."""
    texts = [(problem, actors.tokenizer.decode(s.token_ids, skip_special_tokens=True))
             for problem, group in zip(problems, samples) for s in group]
    triples = [(i, text, problem) for i, (problem, text) in enumerate(texts)]
    labels = [lab | {"text": text} for lab, (_, text, _) in zip(judge(triples, label), triples)]
    if actors.scorer is not None:  # InstructGPT: the reward is the RM's score at EOS; `correct` stays the truth
        import ray

        from ray_cluster.reward_scorer import ScoreRequest

        scored = ray.get(actors.scorer.score.remote([ScoreRequest(i, p["prompt"] + t) for i, t, p in triples]))
        for lab, result in zip(labels, scored):
            lab["rm_score"] = result.reward
            lab["reward"] = result.reward * (lab["reward"] if rm_times_labels else 1.0)
    return labels


@dataclass
class RLBatch:
    tensors: dict[str, torch.Tensor]  # pack(): input_ids, attention_mask (B, L); response_mask, logprob_index (B, T)
    advantages: torch.Tensor  # (B, T)
    old_logp: torch.Tensor | None  # (B, T); None until the update when it is the update's own pass
    ref_logp: torch.Tensor  # (B, T)
    sampler_logp: torch.Tensor  # (B, T) what the engines reported for the same tokens
    rewards: torch.Tensor  # (B,) what the advantages were computed from
    values: torch.Tensor | None = None  # (B, T) the critic's, at rollout time
    returns: torch.Tensor | None = None  # (B, T) the critic's targets
    metrics: dict = field(default_factory=dict)


def advantages_for(actors: Actors, problems: list[dict], samples: list[list[TokenSample]], labels: list[dict],
                   cfg: OnlineRLConfig, kl_coef: float) -> RLBatch:
    """Scores → the rewards the update uses (missing-EOS penalty, KL in the reward, whitening, as configured) →
    the registered advantage estimator's advantages; plus the iteration's rollout metrics."""
    import ray

    alg = cfg.algorithm
    flat = [(g, s) for g, group in enumerate(samples) for s in group]
    tensors = pack([actors.encoded[problems[g]["id"]] for g, _ in flat], [s.token_ids for _, s in flat],
                   actors.pad_id)
    mask = tensors["response_mask"]  # (B, T)
    scored = ray.get(actors.trainer.score.remote(tensors, policy=not cfg.old_logp_in_update))
    old, ref = scored["old_logp"], scored["ref_logp"]
    scores = torch.tensor([float(lab["reward"]) for lab in labels])  # (B,)
    eos = torch.tensor([s.eos for _, s in flat])
    rewards = missing_eos_penalty(scores, eos, alg.missing_eos_penalty)
    if alg.whiten_rewards:
        rewards = whiten(rewards, torch.ones_like(rewards), shift_mean=False)
    in_reward = alg.kl_in == "reward" and old is not None
    kl_tokens = KL_ESTIMATORS.lookup("k1")(old, ref) * mask if in_reward else torch.zeros_like(ref)  # (B, T) k1
    token_rewards = shaped_token_rewards(rewards, kl_tokens, mask, kl_coef if in_reward else 0.0)  # (InstructGPT)
    seq_rewards = token_rewards.sum(-1)  # (B,) critic-free estimators see the KL-shaped sequence reward
    groups = torch.tensor([g for g, _ in flat])
    values = ray.get(actors.critic.values.remote(tensors)) if actors.critic is not None else None
    adv, returns = ADVANTAGES.lookup(alg.advantage)(
        AdvantageInputs(seq_rewards, groups, mask, token_rewards=token_rewards, values=values),
        AdvantageConfig(alg.gamma, alg.lam))
    dropped = 0
    if alg.drop_uniform_groups:
        # DAPO: a group whose samples all scored the same has no signal (judged on the scores, not the KL)
        same = [g for g in range(len(samples)) if torch.unique(rewards[groups == g]).numel() == 1]
        dropped = len(same)
        adv[torch.isin(groups, torch.tensor(same, dtype=torch.long))] = 0.0
    if alg.whiten_advantages:
        adv = whiten(adv, mask)
    sampler = torch.zeros_like(ref)
    for b, (_, s) in enumerate(flat):
        sampler[b, : len(s.logprobs)] = torch.tensor(s.logprobs)
    metrics = {"reward_mean": float(scores.mean()), "accuracy": sum(bool(lab["correct"]) for lab in labels)
               / len(labels), "response_len": float(mask.sum(-1).mean()), "eos_rate": float(eos.float().mean()),
               "uniform_groups_dropped": dropped,
               "unjudged": sum(lab.get("status") in ("label_timeout", "label_error") for lab in labels)}
    if "rm_score" in labels[0]:
        metrics["rm_score"] = sum(lab["rm_score"] for lab in labels) / len(labels)
    batch = RLBatch(tensors, adv * mask, old, ref, sampler, rewards, values, returns, metrics)
    if old is not None:
        batch.metrics |= trainer_logp_metrics(batch)
    return batch


def trainer_logp_metrics(batch: RLBatch) -> dict:
    """How far the engines' log-probs are from the trainer's for the same tokens (the weight sync's proof, every
    iteration), and the policy's k1 KL to the reference at rollout time."""
    mask = batch.tensors["response_mask"]  # (B, T)
    diff = (batch.sampler_logp - batch.old_logp).abs() * mask
    return {"logprob_diff": float(diff.sum() / mask.sum().clamp(min=1)), "logprob_diff_max": float(diff.max()),
            "ref_kl": float(masked_mean(KL_ESTIMATORS.lookup("k1")(batch.old_logp, batch.ref_logp) * mask, mask))}


def evaluate_greedy(actors: Actors, test: list[dict], label: LabelConfig) -> float:
    """Greedy accuracy of the current policy (the engines hold its weights) on the held-out rows: a point of
    the run's curve. The final, reported evaluation is the flow's evaluate_model over the whole test split."""
    import ray

    prompts = [PromptRecord(prompt_id=row["id"], text=row["prompt"], **prompt_format(row)) for row in test]
    sampling = SamplingSpec(n=1, temperature=0.0, max_tokens=actors.max_tokens)
    calls = [engine.generate.remote([prompts[i] for i in chunk], sampling)
             for engine, chunk in zip(actors.engines, _split(prompts, len(actors.engines)))]
    records = [r for result in ray.get(calls) for r in result]
    triples = [(i, r.text, row) for i, (r, row) in enumerate(zip(records, test))]
    return sum(lab["correct"] for lab in judge(triples, label)) / len(test)


def rollout_rows(iteration: int, problems: list[dict], samples: list[list[TokenSample]], labels: list[dict],
                 batch: RLBatch) -> list[dict]:
    """The iteration's ROLLOUTS rows: every sample, its reward and the advantage it was trained with."""
    mask = batch.tensors["response_mask"]
    seq_adv = (batch.advantages.sum(-1) / mask.sum(-1).clamp(min=1)).tolist()  # (B,) mean over its tokens
    flat = [(p, k, s) for p, group in zip(problems, samples) for k, s in enumerate(group)]
    return [{"iteration": iteration, "prompt_id": p["id"], "sample_index": k, "text": lab["text"],
             "response_tokens": len(s.token_ids), "eos": s.eos, "score": float(lab["reward"]),
             "reward": float(batch.rewards[b]), "correct": bool(lab["correct"]), "status": str(lab["status"]),
             "advantage": seq_adv[b], "sampler_logprob": float(sum(s.logprobs))}
            for b, ((p, k, s), lab) in enumerate(zip(flat, labels))]
