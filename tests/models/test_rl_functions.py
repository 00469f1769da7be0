"""Online RL's pure functions against values worked out by hand (models/rl/)."""
from __future__ import annotations

import math

import pytest
import torch

from models.rl.advantages import ADVANTAGES, AdvantageConfig, AdvantageInputs
from models.rl.losses import (AGGREGATIONS, KL_ESTIMATORS, AdaptiveKL, missing_eos_penalty, policy_loss,
                              shaped_token_rewards, value_loss, whiten)

# two prompts: group 0 answered [1, 0], group 1 answered [2, 0, 1]; one response token each
SCORES = torch.tensor([1.0, 0.0, 2.0, 0.0, 1.0])
GROUPS = torch.tensor([0, 0, 1, 1, 1])
ONE_TOKEN = torch.ones(5, 1)


def _adv(name: str, **kw) -> list[float]:
    adv, _ = ADVANTAGES.lookup(name)(AdvantageInputs(SCORES, GROUPS, ONE_TOKEN, **kw), AdvantageConfig(eps=0.0))
    return adv[:, 0].tolist()


def test_grpo_normalises_within_each_group():
    # group 0: mean 0.5, unbiased std 0.7071; group 1: mean 1, std 1
    assert _adv("grpo") == pytest.approx([0.70711, -0.70711, 1.0, -1.0, 0.0], abs=1e-4)


def test_dr_grpo_only_subtracts_the_group_mean():
    assert _adv("dr_grpo") == pytest.approx([0.5, -0.5, 1.0, -1.0, 0.0])


def test_rloo_subtracts_the_mean_of_the_other_samples():
    # 2 − mean(0, 1) = 1.5 for the first sample of group 1
    assert _adv("rloo") == pytest.approx([1.0, -1.0, 1.5, -1.5, 0.0])


def test_advantages_are_the_same_on_every_token_and_zero_on_padding():
    mask = torch.tensor([[1.0, 1.0, 0.0]] * 5)
    adv, _ = ADVANTAGES.lookup("grpo")(AdvantageInputs(SCORES, GROUPS, mask), AdvantageConfig(eps=0.0))
    assert adv[:, 0].tolist() == adv[:, 1].tolist() and adv[:, 2].tolist() == [0.0] * 5


def test_gae_by_hand():
    # row 0: δ2 = 1 − 0.4 = 0.6; δ1 = 0.4 − 0.2 = 0.2 → A1 = 0.2 + 0.5·0.6; δ0 = 0.2 − 0.5 → A0 = −0.3 + 0.5·0.5
    # row 1: the padded position (reward 5, value 9) must not count: A1 = 1 − 0.5, A0 = 0 + 0.5·0.5
    inputs = AdvantageInputs(scores=torch.zeros(2), groups=torch.tensor([0, 1]),
                             mask=torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]]),
                             token_rewards=torch.tensor([[0.0, 0.0, 1.0], [0.0, 1.0, 5.0]]),
                             values=torch.tensor([[0.5, 0.2, 0.4], [0.5, 0.5, 9.0]]))
    adv, returns = ADVANTAGES.lookup("gae")(inputs, AdvantageConfig(gamma=1.0, lam=0.5))
    assert adv.tolist() == [pytest.approx([-0.05, 0.5, 0.6]), pytest.approx([0.25, 0.5, 0.0])]
    assert returns.tolist() == [pytest.approx([0.45, 0.7, 1.0]), pytest.approx([0.75, 1.0, 0.0])]


def test_gae_without_a_critic_is_refused():
    with pytest.raises(ValueError, match="critic"):
        ADVANTAGES.lookup("gae")(AdvantageInputs(SCORES, GROUPS, ONE_TOKEN), AdvantageConfig())


def test_clipped_policy_loss_by_hand():
    # ratios 1.5 (A = +1) and 0.5 (A = −1): both clipped, to 1.2 and 0.8 → per token −1.2 and +0.8
    logp, old = torch.log(torch.tensor([[1.5, 0.5]])), torch.zeros(1, 2)
    loss, stats = policy_loss(logp, old, torch.tensor([[1.0, -1.0]]), torch.ones(1, 2), aggregation="token_mean")
    assert float(loss) == pytest.approx(-0.2) and stats["clip_frac"] == 1.0
    # DAPO's clip-higher: ε_high = 0.6 leaves the 1.5 ratio unclipped
    loss, stats = policy_loss(logp, old, torch.tensor([[1.0, -1.0]]), torch.ones(1, 2), clip_high=0.6,
                              aggregation="token_mean")
    assert float(loss) == pytest.approx((-1.5 + 0.8) / 2) and stats["clip_frac"] == 0.5


def test_the_policy_gradient_raises_the_log_prob_of_positive_advantage_tokens():
    logp = torch.zeros(1, 2, requires_grad=True)
    loss, _ = policy_loss(logp, torch.zeros(1, 2), torch.tensor([[1.0, -1.0]]), torch.ones(1, 2))
    loss.backward()
    assert logp.grad[0, 0] < 0 < logp.grad[0, 1]  # gradient descent raises token 0, lowers token 1


def test_aggregations_by_hand():
    per_token = torch.tensor([[1.0, 2.0, 3.0], [4.0, 9.0, 9.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0]])
    assert float(AGGREGATIONS["seq_mean_token_mean"](per_token, mask, 4)) == pytest.approx((2 + 4) / 2)
    assert float(AGGREGATIONS["token_mean"](per_token, mask, 4)) == pytest.approx(10 / 4)
    assert float(AGGREGATIONS["seq_mean_token_sum_norm"](per_token, mask, 4)) == pytest.approx((6 / 4 + 4 / 4) / 2)


def test_clipped_value_loss_by_hand():
    # V moved 0.5 → 1.0 but is clipped to 0.7; the larger error (0.7 − 2)² wins: ½ · 1.69
    loss, stats = value_loss(torch.tensor([[1.0]]), torch.tensor([[0.5]]), torch.tensor([[2.0]]), torch.ones(1, 1))
    assert float(loss) == pytest.approx(0.845) and stats["value_clip_frac"] == 1.0


def test_kl_estimators_by_hand():
    logp, ref = torch.log(torch.tensor([0.5])), torch.log(torch.tensor([0.25]))
    assert float(KL_ESTIMATORS["k1"](logp, ref)) == pytest.approx(math.log(2))
    assert float(KL_ESTIMATORS["k2"](logp, ref)) == pytest.approx(0.5 * math.log(2) ** 2)
    assert float(KL_ESTIMATORS["k3"](logp, ref)) == pytest.approx(0.5 + math.log(2) - 1)
    assert float(KL_ESTIMATORS["k3"](logp, logp)) == 0.0


def test_adaptive_kl_moves_towards_its_target_and_clips_the_error():
    ctl = AdaptiveKL(0.15, target=6, horizon=10000)
    ctl.update(current_kl=12, n_steps=100)  # error 1.0 clipped to 0.2
    assert ctl.value == pytest.approx(0.15 * (1 + 0.2 * 100 / 10000))
    ctl.update(current_kl=6, n_steps=100)
    assert ctl.value == pytest.approx(0.15 * 1.002)
    ctl.update(current_kl=3, n_steps=100)  # below target: β shrinks
    assert ctl.value < 0.15 * 1.002
    restored = AdaptiveKL(0.0, 6, 10000)
    restored.load_state_dict(ctl.state_dict())
    assert restored.value == ctl.value


def test_whitening_by_hand():
    x, mask = torch.tensor([1.0, 2.0, 3.0, 100.0]), torch.tensor([1.0, 1.0, 1.0, 0.0])
    assert whiten(x, mask, eps=0).tolist() == pytest.approx([-1.22474, 0.0, 1.22474, 0.0], abs=1e-5)
    assert whiten(x, mask, shift_mean=False, eps=0).tolist() == pytest.approx([0.77526, 2.0, 3.22474, 0.0], abs=1e-5)


def test_the_score_lands_on_the_last_response_token_with_the_kl_penalty_on_every_token():
    rewards = shaped_token_rewards(torch.tensor([1.0]), torch.tensor([[0.1, 0.2, 0.3]]),
                                   torch.tensor([[1.0, 1.0, 0.0]]), beta=0.5)
    assert rewards.tolist() == [pytest.approx([-0.05, 0.9, 0.0])]


def test_a_response_without_eos_gets_the_penalty_instead_of_its_score():
    out = missing_eos_penalty(torch.tensor([0.7, 0.3]), torch.tensor([True, False]), -1.0)
    assert out.tolist() == pytest.approx([0.7, -1.0])
    assert missing_eos_penalty(torch.tensor([0.3]), torch.tensor([False]), None).tolist() == pytest.approx([0.3])
