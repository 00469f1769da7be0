"""The online-RL trainer and critic roles, in-process: micro-batching (gradient accumulation) gives the step one
whole minibatch gives, for sequence- and token-averaged losses (issue 16: large vocabularies on GPU need it)."""
from __future__ import annotations

import pytest
import torch

from models.rl.batch import pack
from ray_cluster.rl_config import AlgorithmConfig, OnlineRLConfig, RLOptimConfig
from ray_cluster.folders import RemoteFolder

PROMPTS = [[1, 5, 6], [1, 7], [1, 5, 6, 8, 9], [1, 4], [1, 9, 9]]
# lengths far apart, so a micro-batch's share of sequences and of tokens differ
RESPONSES = [[10], [11, 12, 13, 14, 15, 16, 17, 18], [14, 15], [16, 17, 18, 19, 20, 21], [20, 21, 22]]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    from generation_assets import build_model_folder

    return build_model_folder(tmp_path_factory.mktemp("policy"))


def _cfg(aggregation: str, micro: int | None, advantage: str = "grpo") -> OnlineRLConfig:
    return OnlineRLConfig(algorithm=AlgorithmConfig(aggregation=aggregation, advantage=advantage, kl_coef=0.1),
                          optim=RLOptimConfig(lr=1e-3, micro_batch_size=micro, anneal=False, grad_clip=1e6))


@pytest.mark.parametrize("aggregation", ["seq_mean_token_mean", "token_mean", "seq_mean_token_sum_norm"])
def test_micro_batches_add_up_to_the_whole_minibatch_step(model_dir, aggregation):
    from ray_cluster.policy_trainer import PolicyTrainer

    batch = pack(PROMPTS, RESPONSES, pad_id=0)
    advantages = torch.tensor([1.0, -0.5, 0.3, -1.0, 0.7])[:, None] * batch["response_mask"]
    after = {}
    for micro in (None, 2):
        trainer = PolicyTrainer(RemoteFolder(uri=str(model_dir)), _cfg(aggregation, micro))
        trainer.optimizer.step = lambda: None  # keep the accumulated gradient to compare (Adam's first step is
        scored = trainer.score(batch)          # sign-like and would hide a wrong weighting)
        # the reference is shifted, so the KL term has a gradient too
        trainer.update(batch, advantages, scored["old_logp"], scored["ref_logp"] - 0.3, 0.1, seed=0)
        after[micro] = {n: p.grad.clone() for n, p in trainer.model.named_parameters()}
    assert max(float(g.abs().max()) for g in after[None].values()) > 1e-4
    for name, grad in after[None].items():
        assert torch.allclose(grad, after[2][name], atol=1e-7, rtol=1e-4), name


def test_the_critic_micro_batches_to_the_same_step(model_dir):
    from ray_cluster.critic import ValueCritic

    batch = pack(PROMPTS, RESPONSES, pad_id=0)
    returns = torch.tensor([1.0, 0.0, 0.5, -1.0, 0.2])[:, None] * batch["response_mask"]
    after = {}
    for micro in (None, 2):
        critic = ValueCritic(RemoteFolder(uri=str(model_dir)), False, _cfg("token_mean", micro, "gae"))
        critic.optimizer.step = lambda: None
        values = critic.values(batch)
        assert float(values.abs().max()) == 0.0  # a zero head: the first values are 0
        critic.update(batch, returns, values, seed=0)
        after[micro] = {n: p.grad.clone() for n, p in critic.model.named_parameters() if p.grad is not None}
    assert after[None] and max(float(g.abs().max()) for g in after[None].values()) > 1e-4
    for name, grad in after[None].items():
        assert torch.allclose(grad, after[2][name], atol=1e-7, rtol=1e-4), name


def test_one_on_policy_step_takes_its_old_logprobs_from_its_own_pass(model_dir):
    """One step per batch: the update without a separate scoring pass moves the policy exactly as the update
    with the scored old log-probs does, and hands back those log-probs in batch order (micro-batched and
    shuffled inside)."""
    from ray_cluster.policy_trainer import PolicyTrainer

    batch = pack(PROMPTS, RESPONSES, pad_id=0)
    advantages = torch.tensor([1.0, -0.5, 0.3, -1.0, 0.7])[:, None] * batch["response_mask"]
    cfg = _cfg("seq_mean_token_mean", micro=2)
    assert cfg.old_logp_in_update
    after, returned = {}, {}
    for scored_first in (True, False):
        trainer = PolicyTrainer(RemoteFolder(uri=str(model_dir)), cfg)
        scored = trainer.score(batch, policy=scored_first)
        assert (scored["old_logp"] is None) is not scored_first
        stats = trainer.update(batch, advantages, scored["old_logp"], scored["ref_logp"] - 0.3, 0.1, seed=3)
        returned[scored_first] = stats.pop("old_logp", scored["old_logp"])
        assert stats["clip_frac"] == 0.0
        after[scored_first] = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
    assert torch.allclose(returned[False], returned[True], atol=1e-6)
    moved = max(float((after[True][n] - p.detach()).abs().max())
                for n, p in PolicyTrainer(RemoteFolder(uri=str(model_dir)), cfg).model.named_parameters())
    assert moved > 1e-5
    for name, weight in after[True].items():
        assert torch.allclose(weight, after[False][name], atol=1e-6), name
    # with more than one step the rollout-time log-probs must be scored before the first
    several = PolicyTrainer(RemoteFolder(uri=str(model_dir)), _cfg("token_mean", None).model_copy(
        update={"optim": RLOptimConfig(lr=1e-3, minibatches=2)}))
    assert not several.cfg.old_logp_in_update
    with pytest.raises(ValueError, match="one optimiser step"):
        several.update(batch, advantages, None, scored["ref_logp"], 0.1, seed=0)
