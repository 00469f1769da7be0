"""The online-RL trainer role: a Ray actor that holds the policy being trained, its frozen reference and the
optimiser. The stage (tasks/training/online_rl.py) sends it one batch of scored rollouts per iteration; it
returns log-probs and metrics and hands its weights out for the engines; it never touches the store."""
from __future__ import annotations

import copy
import random

import torch

from models.rl.batch import response_logprobs
from ray_cluster.rl_config import OnlineRLConfig
from models.rl.losses import AGGREGATIONS, KL_ESTIMATORS, cosine_lr, masked_mean, policy_loss
from ray_cluster.folders import RemoteFolder


def disable_dropout(model: torch.nn.Module) -> None:
    """The N+ details: dropout off, so the trainer's log-probs of a rollout equal the sampler's."""
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0


class PolicyTrainer:
    def __init__(self, model: RemoteFolder, cfg: OnlineRLConfig):
        from models.tiny_llama import load_model_folder
        from ray_cluster.folders import materialize

        torch.set_num_threads(cfg.trainer.threads)
        self.device = "cuda" if torch.cuda.is_available() and cfg.trainer.num_gpus > 0 else "cpu"
        self.cfg = cfg
        self.policy, _ = load_model_folder(materialize(model), self.device)
        disable_dropout(self.policy)
        self.reference = copy.deepcopy(self.policy).eval().requires_grad_(False)
        self.policy.train()
        optim = cfg.optim
        self.optimizer = torch.optim.AdamW(self.policy.parameters(), lr=optim.lr, betas=(0.9, 0.95),
                                           weight_decay=optim.weight_decay)
        total = cfg.iterations * optim.epochs * optim.minibatches
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda s: cosine_lr(s, total, optim.warmup_updates) if optim.anneal else 1.0)

    def _to(self, batch: dict) -> dict:
        return {k: v.to(self.device) for k, v in batch.items()}

    def score(self, batch: dict, temperature: float | None = None) -> dict[str, torch.Tensor]:
        """Rollout-time log-probs of the policy and of the reference, (B, T) each, scaled by the sampling
        temperature (or `temperature`)."""
        batch = self._to(batch)
        temperature = self.cfg.rollout.temperature if temperature is None else temperature
        old, ref = [], []
        with torch.no_grad():
            for micro in self._micro(batch):
                old.append(response_logprobs(self.policy, micro, temperature)[0].cpu())
                ref.append(response_logprobs(self.reference, micro, temperature)[0].cpu())
        return {"old_logp": torch.cat(old), "ref_logp": torch.cat(ref)}

    def _micro(self, batch: dict) -> list[dict]:
        size = self.cfg.optim.micro_batch_size or len(batch["input_ids"])
        return [{k: v[i: i + size] for k, v in batch.items()} for i in range(0, len(batch["input_ids"]), size)]

    def update(self, batch: dict, advantages: torch.Tensor, old_logp: torch.Tensor, ref_logp: torch.Tensor,
               kl_coef: float, seed: int) -> dict:
        """`epochs` passes of `minibatches` clipped-ratio steps over one batch of rollouts; the means of the
        per-step metrics."""
        alg, optim = self.cfg.algorithm, self.cfg.optim
        batch = self._to(batch) | {"advantages": advantages.to(self.device), "old_logp": old_logp.to(self.device),
                                   "ref_logp": ref_logp.to(self.device)}
        order = torch.Generator().manual_seed(seed)
        n, sums, steps = len(advantages), {}, 0
        for _ in range(optim.epochs):
            perm = torch.randperm(n, generator=order)
            for part in perm.chunk(optim.minibatches):
                mb = {k: v[part] for k, v in batch.items()}
                stats = self._step(mb, alg, kl_coef, optim.grad_clip)
                for k, v in stats.items():
                    sums[k] = sums.get(k, 0.0) + v
                steps += 1
        return {k: v / steps for k, v in sums.items()} | {"lr": self.optimizer.param_groups[0]["lr"]}

    def _step(self, mb: dict, alg, kl_coef: float, grad_clip: float) -> dict:
        """One optimiser step over a minibatch, accumulated over micro-batches each weighted by its share (of
        sequences or tokens, as the aggregation averages), so the step equals one pass over the minibatch."""
        share_by = AGGREGATIONS.lookup(alg.aggregation).share_by
        tokens, seqs = float(mb["response_mask"].sum().clamp(min=1)), len(mb["input_ids"])
        self.optimizer.zero_grad(set_to_none=True)
        sums: dict[str, float] = {}
        for micro in self._micro(mb):
            mask = micro["response_mask"]
            token_share = float(mask.sum()) / tokens
            share = token_share if share_by == "tokens" else len(micro["input_ids"]) / seqs
            logp, entropy = response_logprobs(self.policy, micro, self.cfg.rollout.temperature, with_entropy=True)
            loss, stats = policy_loss(logp, micro["old_logp"], micro["advantages"], mask, alg.clip_low,
                                      alg.clip_high, alg.aggregation, self.cfg.rollout.max_tokens)
            kl = masked_mean(KL_ESTIMATORS.lookup(alg.kl_estimator)(logp, micro["ref_logp"]), mask)
            ent = masked_mean(entropy, mask)
            total = share * loss + token_share * (-alg.entropy_coef * ent + (kl_coef * kl if alg.kl_in == "loss"
                                                                               else 0.0))
            total.backward()
            for key, value in {"policy_loss": float(loss.detach()) * share, "kl": float(kl.detach()) * token_share,
                               "entropy": float(ent.detach()) * token_share,
                               **{k: v * token_share for k, v in stats.items()}}.items():
                sums[key] = sums.get(key, 0.0) + value
        grad_norm = torch.nn.utils.clip_grad_norm_(self.policy.parameters(), grad_clip)
        self.optimizer.step()
        self.scheduler.step()
        return sums | {"grad_norm": float(grad_norm)}

    def weights(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().to("cpu", copy=True) for k, v in self.policy.state_dict().items()}

    def state(self) -> dict:
        """Everything but the weights needed to continue exactly: optimiser, schedule, RNG."""
        return {"optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                "rng": {"torch": torch.get_rng_state(), "python": random.getstate()}}

    def restore(self, weights: dict[str, torch.Tensor], state: dict) -> None:
        self.policy.load_state_dict(weights)
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["rng"]["torch"])
        random.setstate(state["rng"]["python"])
