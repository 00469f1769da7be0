"""Every registered loss against values computed by hand on tiny tensors."""
import math

import pytest
import torch

from models.losses import (LOSSES, dpo_loss, pairwise_rm_loss, ranking_rm_loss, rrtf_loss, sequence_logprobs,
                           token_logprobs)


def _ls(x):  # log σ(x)
    return -math.log1p(math.exp(-x))


def test_registry_names_every_method():
    assert {"sft", "pairwise_rm", "ranking_rm", "dpo", "rrtf"} <= set(LOSSES)


def test_sequence_logprobs_sum_and_mean_over_response_tokens():
    logits = torch.zeros(1, 3, 2)
    logits[0, 0] = torch.tensor([0.0, math.log(3.0)])  # p(1) = 3/4 at t=1
    logits[0, 1] = torch.tensor([math.log(3.0), 0.0])  # p(0) = 3/4 at t=2
    ids, mask = torch.tensor([[0, 1, 1]]), torch.tensor([[0, 1, 1]])
    assert token_logprobs(logits, ids)[0].tolist() == pytest.approx([math.log(0.75), math.log(0.25)])
    assert sequence_logprobs(logits, ids, mask).item() == pytest.approx(math.log(0.75) + math.log(0.25))
    assert sequence_logprobs(logits, ids, mask, average=True).item() == pytest.approx(
        (math.log(0.75) + math.log(0.25)) / 2)


def test_pairwise_rm_loss():
    out = pairwise_rm_loss(torch.tensor([[2.0, 1.0], [0.0, 0.5]]))  # (chosen, rejected) per row
    assert out.tolist() == pytest.approx([-_ls(1.0), -_ls(-0.5)])
    with pytest.raises(ValueError, match="pairwise_rm needs groups of 2"):
        pairwise_rm_loss(torch.zeros(1, 3))


def test_ranking_rm_loss_averages_all_pairs_of_a_prompt():
    r = torch.tensor([[3.0, 1.0, 0.0]])  # best first
    expected = -(_ls(2.0) + _ls(3.0) + _ls(1.0)) / 3
    assert ranking_rm_loss(r).item() == pytest.approx(expected)
    # a missing third response leaves only the (0, 1) pair
    assert ranking_rm_loss(r, torch.tensor([[1, 1, 0]])).item() == pytest.approx(-_ls(2.0))
    # K = 2 is the pairwise loss
    assert ranking_rm_loss(torch.tensor([[2.0, 1.0]])).item() == pytest.approx(
        pairwise_rm_loss(torch.tensor([[2.0, 1.0]])).item())


def test_dpo_loss():
    out = dpo_loss(torch.tensor([-1.0]), torch.tensor([-3.0]), torch.tensor([-2.0]), torch.tensor([-2.5]), beta=0.5)
    # margin = (-1 + 2) - (-3 + 2.5) = 1.5; loss = -log σ(0.75)
    assert out.item() == pytest.approx(-_ls(0.75))
    same = dpo_loss(torch.tensor([-1.0]), torch.tensor([-2.0]), torch.tensor([-1.0]), torch.tensor([-2.0]))
    assert same.item() == pytest.approx(math.log(2.0))  # policy == reference: log 2


def test_dpo_loss_with_the_chosen_nll_term():
    args = (torch.tensor([-6.0]), torch.tensor([-3.0]), torch.tensor([-6.0]), torch.tensor([-3.0]))
    # margin 0 → log 2; plus α · 6 / 3 tokens = 0.5 · 2
    out = dpo_loss(*args, beta=0.5, chosen_tokens=torch.tensor([3.0]), nll_coef=0.5)
    assert out.item() == pytest.approx(math.log(2.0) + 1.0)
    assert dpo_loss(*args, beta=0.5).item() == pytest.approx(math.log(2.0))  # α = 0: plain DPO
    with pytest.raises(ValueError, match="needs chosen_tokens"):
        dpo_loss(*args, nll_coef=1.0)


def test_rrtf_loss_penalises_worse_responses_scored_above_better_ones():
    logp = torch.tensor([[-0.5, -1.0, -0.2]])
    scores = torch.tensor([[1.0, 0.0, 0.0]])  # response 0 passes, 1 and 2 fail
    # pairs with s_i < s_j: (1, 0): max(0, -1.0 + 0.5) = 0; (2, 0): max(0, -0.2 + 0.5) = 0.3
    assert rrtf_loss(logp, scores, torch.tensor([2.0])).item() == pytest.approx(0.3 + 2.0)
    # equal scores are not ranked against each other; a missing response takes part in nothing
    assert rrtf_loss(logp, torch.zeros(1, 3), torch.tensor([0.0])).item() == 0.0
    assert rrtf_loss(logp, scores, torch.tensor([0.0]), torch.tensor([[1, 1, 0]])).item() == 0.0


def test_prm_bce_is_binary_cross_entropy_summed_over_valid_steps():
    import math

    import torch

    from models.losses import get_loss

    logits = torch.tensor([[0.0, 2.0, 5.0], [-1.0, 0.0, 0.0]])  # (B=2, S=3)
    targets = torch.tensor([[1.0, 0.0, 1.0], [0.5, 1.0, 0.0]])
    valid = torch.tensor([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    # row 0: -log σ(0) - log(1 - σ(2)); row 1 (soft 0.5 at logit -1): -(0.5 log σ(-1) + 0.5 log σ(1))
    sig = lambda x: 1 / (1 + math.exp(-x))  # noqa: E731
    row0 = -math.log(sig(0.0)) - math.log(1 - sig(2.0))
    row1 = -(0.5 * math.log(sig(-1.0)) + 0.5 * math.log(sig(1.0)))
    got = get_loss("prm_bce")(logits, targets, valid)
    assert got.shape == (2,) and torch.allclose(got, torch.tensor([row0, row1]), atol=1e-6)
