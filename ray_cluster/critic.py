"""The PPO critic role: a Ray actor holding a value model (a reward-model folder: backbone + scalar head `score`)
read at every response position, and its optimiser. The N+ details initialise it from the reward model; without
one it starts from the SFT policy's backbone with a zero head (values 0 at first, so early advantages are the
rewards themselves)."""
from __future__ import annotations

import torch

from models.rl.losses import value_loss
from ray_cluster.folders import RemoteFolder
from ray_cluster.learner import Learner
from ray_cluster.rl_config import OnlineRLConfig


class ValueCritic(Learner):
    def __init__(self, init: RemoteFolder, from_reward_model: bool, cfg: OnlineRLConfig):
        from transformers import AutoTokenizer

        from models.reward_model import load_reward_model, reward_model_from_lm
        from ray_cluster.folders import materialize

        torch.set_num_threads(cfg.trainer.threads)
        folder = materialize(init)
        if from_reward_model:
            model, _ = load_reward_model(folder)
        else:
            model = reward_model_from_lm(folder, AutoTokenizer.from_pretrained(folder), cfg.seed)
            torch.nn.init.zeros_(model.score.weight)
        # weight decay 0.01 (AdamW's default, which the critic has always used), not the policy's optim.weight_decay
        self._setup(model, cfg, cfg.optim.critic_lr or cfg.optim.lr, weight_decay=0.01)

    def _values(self, batch: dict) -> torch.Tensor:
        """V(s_j) for each response token j: the head on the hidden state that predicts token j, (B, T)."""
        backbone = getattr(self.model, self.model.base_model_prefix)
        hidden = backbone(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
        values = self.model.score(hidden)[..., 0]  # (B, L)
        return torch.gather(values, 1, batch["logprob_index"]) * batch["response_mask"]

    def values(self, batch: dict) -> torch.Tensor:
        with torch.no_grad():
            return torch.cat([self._values(micro) for micro in self._micro(batch)])

    def update(self, batch: dict, returns: torch.Tensor, old_values: torch.Tensor, seed: int) -> dict:
        """The clipped value loss over the same epochs and minibatches as the policy."""
        optim, alg = self.cfg.optim, self.cfg.algorithm
        batch = batch | {"returns": returns, "old_values": old_values}
        order, sums, steps = torch.Generator().manual_seed(seed), {}, 0
        for _ in range(optim.epochs):
            for part in torch.randperm(len(returns), generator=order).chunk(optim.minibatches):
                mb = {k: v[part] for k, v in batch.items()}
                tokens = float(mb["response_mask"].sum().clamp(min=1))
                self.optimizer.zero_grad(set_to_none=True)
                for micro in self._micro(mb):  # the value loss is a token mean: each micro-batch by its tokens
                    share = float(micro["response_mask"].sum()) / tokens
                    loss, stats = value_loss(self._values(micro), micro["old_values"], micro["returns"],
                                             micro["response_mask"], alg.value_clip)
                    (share * alg.vf_coef * loss).backward()
                    for k, v in (stats | {"value_loss": float(loss)}).items():
                        sums[k] = sums.get(k, 0.0) + v * share
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), optim.grad_clip)
                self.optimizer.step()
                self.scheduler.step()
                steps += 1
        return {k: v / steps for k, v in sums.items()}
