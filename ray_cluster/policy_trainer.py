"""The online-RL trainer role: a Ray actor that holds the policy being trained, its frozen reference and the
optimiser. The stage (tasks/training/online_rl.py) sends it one batch of scored rollouts per iteration; it
returns log-probs and metrics and hands its weights out for the engines; it never touches the store."""
from __future__ import annotations

import copy

import torch

from models.rl.batch import response_logprobs
from models.rl.losses import AGGREGATIONS, KL_ESTIMATORS, masked_mean, policy_loss
from ray_cluster.folders import RemoteFolder
from ray_cluster.learner import Learner
from ray_cluster.rl_config import OnlineRLConfig


class PolicyTrainer(Learner):
    """`self.model` is the policy being trained; `self.reference` its frozen copy at the start (the KL's anchor)."""

    def __init__(self, model: RemoteFolder, cfg: OnlineRLConfig):
        from models.tiny_llama import load_model_folder
        from ray_cluster.folders import materialize

        torch.set_num_threads(cfg.trainer.threads)
        self.device = "cuda" if torch.cuda.is_available() and cfg.trainer.num_gpus > 0 else "cpu"
        policy, _ = load_model_folder(materialize(model), self.device)
        self._setup(policy, cfg, cfg.optim.lr, cfg.optim.weight_decay)
        self.reference = copy.deepcopy(policy).eval().requires_grad_(False)

    def _to(self, batch: dict) -> dict:
        return {k: v.to(self.device) for k, v in batch.items()}

    def score(self, batch: dict, temperature: float | None = None, policy: bool = True) -> dict:
        """Rollout-time log-probs of the policy ("old_logp"; None with `policy=False`, when the update's own pass
        gives them) and of the reference ("ref_logp"), (B, T) each, scaled by the sampling temperature (or
        `temperature`)."""
        batch = self._to(batch)
        temperature = self.cfg.rollout.temperature if temperature is None else temperature
        old, ref = [], []
        with torch.no_grad():
            for micro in self._micro(batch):
                if policy:
                    old.append(response_logprobs(self.model, micro, temperature)[0].cpu())
                ref.append(response_logprobs(self.reference, micro, temperature)[0].cpu())
        return {"old_logp": torch.cat(old) if policy else None, "ref_logp": torch.cat(ref)}

    def update(self, batch: dict, advantages: torch.Tensor, old_logp: torch.Tensor | None, ref_logp: torch.Tensor,
               kl_coef: float, seed: int) -> dict:
        """`epochs` passes of `minibatches` clipped-ratio steps over one batch of rollouts; the means of the
        per-step metrics. `old_logp=None` (one step only: `cfg.old_logp_in_update`): the step's own log-probs
        are the old ones, returned as "old_logp" (B, T) in batch order."""
        alg, optim = self.cfg.algorithm, self.cfg.optim
        if old_logp is None and optim.epochs * optim.minibatches != 1:
            raise ValueError("old_logp may come from the update only when it is one optimiser step")
        batch = self._to(batch) | {"advantages": advantages.to(self.device), "ref_logp": ref_logp.to(self.device)}
        if old_logp is not None:
            batch["old_logp"] = old_logp.to(self.device)
        order = torch.Generator().manual_seed(seed)
        n, sums, steps, seen = len(advantages), {}, 0, []
        for _ in range(optim.epochs):
            perm = torch.randperm(n, generator=order)
            for part in perm.chunk(optim.minibatches):
                mb = {k: v[part] for k, v in batch.items()}
                stats = self._step(mb, alg, kl_coef, optim.grad_clip, seen)
                for k, v in stats.items():
                    sums[k] = sums.get(k, 0.0) + v
                steps += 1
        out = {k: v / steps for k, v in sums.items()} | {"lr": self.optimizer.param_groups[0]["lr"]}
        if old_logp is None:  # the one step's log-probs, in the minibatch's (permuted) order → batch order
            out["old_logp"] = torch.empty(n, *seen[0].shape[1:])
            out["old_logp"][perm] = torch.cat(seen)
        return out

    def _step(self, mb: dict, alg, kl_coef: float, grad_clip: float, seen: list) -> dict:
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
            logp, entropy = response_logprobs(self.model, micro, self.cfg.rollout.temperature, with_entropy=True)
            if "old_logp" not in micro:  # the policy that sampled is this one, before the step
                micro["old_logp"] = logp.detach()
                seen.append(micro["old_logp"].cpu())
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
        grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), grad_clip)
        self.optimizer.step()
        self.scheduler.step()
        return sums | {"grad_norm": float(grad_norm)}
