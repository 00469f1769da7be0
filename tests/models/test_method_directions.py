"""One optimiser step of each method moves the model the way its paper intends (issue 15), measured by a path
that does not go through the method's loss: the response log-likelihoods of a plain forward pass, the reward
read at EOS. A sign error, a swapped chosen/rejected column or a mask on the wrong tokens fails here, although
the (wrong) loss itself would still go down."""
from __future__ import annotations

import pytest
import torch

from models.losses import sequence_logprobs
from models.methods import get_method
from models.reward_model import encode_for_reward, rewards_at_eos
from models.sft_data import collate, tokenize_pair
from models.tiny_llama import ModelSize
from models.tokenizer import build_digit_tokenizer

SIZE = ModelSize(hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64, max_positions=64)
PROMPTS = ["Question: 3 + 4 ?\nAnswer:", "Question: 12 * 3 ?\nAnswer:", "Question: 9 - 5 ?\nAnswer:"]
GOOD, BAD, WORST = [" 7", " 36", " 4"], [" 8", " 35", " 14"], [" 1", " 99", " 45"]


@pytest.fixture(scope="module")
def tokenizer():
    return build_digit_tokenizer(PROMPTS + [g + b + w for g, b, w in zip(GOOD, BAD, WORST)])


def _step(entry, cfg, model, rows: dict, tokenizer, lr: float) -> None:
    """One SGD step of the method on all of `rows` as one batch, in place."""
    method = entry.make(entry.build_data(rows, tokenizer, cfg).data, cfg, tokenizer.pad_token_id)
    model.zero_grad()
    summed, _ = method.loss(entry.model.wrap(model), method.collate(method.epoch_units(0, 0)))
    summed.backward()
    torch.optim.SGD(model.parameters(), lr=lr).step()


def _one_step(name: str, rows: dict, tokenizer, lr: float, loss: str | None = None, prime: dict | None = None,
              **extra):
    """(model before, model after) one SGD step of the method; `prime`: SFT rows fitted first (a few steps), to
    put the model where the method has something to correct."""
    entry = get_method(name)
    optim = {"max_len": 48, "batch_size": 8} | ({"loss": loss} if loss else {})
    cfg = entry.config(model=SIZE, optim=optim, **extra)
    model = entry.model.fresh(cfg.model, tokenizer, 0)
    for _ in range(5 if prime else 0):
        _step(get_method("sft"), get_method("sft").config(model=SIZE, optim={"max_len": 48}), model, prime,
              tokenizer, lr=0.05)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    _step(entry, cfg, model, rows, tokenizer, lr)
    old = entry.model.fresh(cfg.model, tokenizer, 0)
    old.load_state_dict(before)
    return old.eval(), model.eval()


@torch.no_grad()
def _logp(model, tokenizer, prompt: str, response: str, average: bool = False) -> float:
    batch = collate([tokenize_pair(tokenizer, prompt, response, 48)], tokenizer.pad_token_id)
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    return sequence_logprobs(logits, batch["input_ids"], batch["loss_mask"], average=average).item()


@torch.no_grad()
def _reward(model, tokenizer, text: str) -> float:
    return rewards_at_eos(model, **encode_for_reward(tokenizer, [text], 48)).item()


def test_sft_raises_the_likelihood_of_the_selected_samples(tokenizer):
    rows = {"examples": [{"prompt": p, "completion": g} for p, g in zip(PROMPTS, GOOD)]}
    old, new = _one_step("sft", rows, tokenizer, lr=0.05)
    for p, g in zip(PROMPTS, GOOD):
        assert _logp(new, tokenizer, p, g) > _logp(old, tokenizer, p, g)


@pytest.mark.parametrize("loss", ["pairwise_rm", "ranking_rm"])
def test_the_reward_model_margin_of_the_chosen_answer_grows(tokenizer, loss):
    pairs = [{"prompt": p, "chosen": g, "rejected": b} for p, g, b in zip(PROMPTS, GOOD, BAD)]
    groups = [{"prompt": p, "texts": [g, b, w]} for p, g, b, w in zip(PROMPTS, GOOD, BAD, WORST)]
    old, new = _one_step("reward_model", {"preferences": pairs if loss == "pairwise_rm" else groups}, tokenizer,
                         lr=0.05, loss=loss)

    def margins(model) -> list[float]:  # r(better) - r(worse) for every ranked pair the data states
        orders = [(0, 1)] if loss == "pairwise_rm" else [(0, 1), (1, 2), (0, 2)]
        ranked = [(p + texts[i], p + texts[j]) for p, *texts in zip(PROMPTS, GOOD, BAD, WORST) for i, j in orders]
        return [_reward(model, tokenizer, hi) - _reward(model, tokenizer, lo) for hi, lo in ranked]

    assert sum(margins(new)) > sum(margins(old))


def test_dpo_grows_the_implicit_reward_margin(tokenizer):
    pairs = [{"prompt": p, "chosen": g, "rejected": b} for p, g, b in zip(PROMPTS, GOOD, BAD)]
    old_model_rows = []
    entry = get_method("dpo")
    reference = entry.model.fresh(entry.config(model=SIZE).model, tokenizer, 0).eval()
    for row in pairs:  # the reference is the starting policy, as the flow computes it (reference_logprobs)
        old_model_rows.append({"chosen_logp": _logp(reference, tokenizer, row["prompt"], row["chosen"]),
                               "rejected_logp": _logp(reference, tokenizer, row["prompt"], row["rejected"])})
    old, new = _one_step("dpo", {"preferences": pairs, "reference": old_model_rows}, tokenizer, lr=0.5, beta=0.1)

    def implicit_margin(model) -> float:  # Σ β[(log π(y_w) - log π_ref(y_w)) - (log π(y_l) - log π_ref(y_l))]
        return sum((_logp(model, tokenizer, r["prompt"], r["chosen"]) - ref["chosen_logp"])
                   - (_logp(model, tokenizer, r["prompt"], r["rejected"]) - ref["rejected_logp"])
                   for r, ref in zip(pairs, old_model_rows))

    assert implicit_margin(old) == pytest.approx(0.0, abs=1e-4)  # the policy starts as its reference
    assert implicit_margin(new) > 1e-4


def test_dpo_nll_term_raises_the_chosen_likelihood_beyond_plain_dpo(tokenizer):
    # Iterative RPO's point: the NLL term pulls the chosen answers up, not only apart from the rejected ones
    pairs = [{"prompt": p, "chosen": g, "rejected": b} for p, g, b in zip(PROMPTS, GOOD, BAD)]
    reference = [{"chosen_logp": 0.0, "rejected_logp": 0.0}] * len(pairs)  # only the margin's offset: no effect
    rows = {"preferences": pairs, "reference": reference}
    old, plain = _one_step("dpo", rows, tokenizer, lr=0.05, beta=0.1)
    _, with_nll = _one_step("dpo", rows, tokenizer, lr=0.05, beta=0.1, nll_coef=1.0)

    def chosen(model) -> float:
        return sum(_logp(model, tokenizer, r["prompt"], r["chosen"]) for r in pairs)

    assert chosen(with_nll) > chosen(plain) + 1e-3
    assert chosen(with_nll) > chosen(old)


def test_rrtf_raises_higher_ranked_responses_relative_to_lower_ranked_ones(tokenizer):
    groups = [{"prompt": p, "texts": [w, g, b], "scores": [0.0, 1.0, 0.5]}  # not in score order on purpose
              for p, g, b, w in zip(PROMPTS, GOOD, BAD, WORST)]
    old, new = _one_step("rrtf", {"preferences": groups}, tokenizer, lr=0.05)

    def gaps(model) -> float:  # mean per-token log-prob, best minus middle plus middle minus worst
        total = 0.0
        for p, g, b, w in zip(PROMPTS, GOOD, BAD, WORST):
            lp = {t: _logp(model, tokenizer, p, t, average=True) for t in (g, b, w)}
            total += (lp[g] - lp[b]) + (lp[b] - lp[w])
        return total

    assert gaps(new) > gaps(old)
    for p, g in zip(PROMPTS, GOOD):  # the fine-tuning term: the best response itself becomes likelier
        assert _logp(new, tokenizer, p, g) > _logp(old, tokenizer, p, g)


def test_rrtfs_ranking_term_pushes_a_likelier_worse_response_below_a_better_one(tokenizer):
    """The ranking term alone. RRTF's loss is the ranking term plus the best response's NLL, so one SGD step of
    RRTF minus one SGD step of SFT on the best responses (same start, same lr) is the ranking term's step. From a
    model taught the worse responses first (the hinge is active), it must lower worse relative to better; a
ranking term with its comparison reversed leaves the pair alone (its hinge is then inactive)."""
    import copy

    groups = [{"prompt": p, "texts": [w, b], "scores": [0.0, 1.0]} for p, b, w in zip(PROMPTS, BAD, WORST)]
    best = {"examples": [{"prompt": p, "completion": b} for p, b in zip(PROMPTS, BAD)]}
    prime = {"examples": [{"prompt": p, "completion": w} for p, w in zip(PROMPTS, WORST)]}
    sft, rrtf = get_method("sft"), get_method("rrtf")
    sft_cfg = sft.config(model=SIZE, optim={"max_len": 48})
    start = sft.model.fresh(SIZE, tokenizer, 0)
    for _ in range(5):
        _step(sft, sft_cfg, start, prime, tokenizer, lr=0.05)
    ranked, fitted = copy.deepcopy(start), copy.deepcopy(start)
    _step(rrtf, rrtf.config(model=SIZE, optim={"max_len": 48}), ranked, {"preferences": groups}, tokenizer, lr=0.01)
    _step(sft, sft_cfg, fitted, best, tokenizer, lr=0.01)

    def middle_over_worst(model) -> float:
        return sum(_logp(model.eval(), tokenizer, p, b, average=True) - _logp(model.eval(), tokenizer, p, w,
                                                                               average=True)
                   for p, b, w in zip(PROMPTS, BAD, WORST))

    assert middle_over_worst(start) < 0  # primed: worst is likelier, the hinge is active
    assert middle_over_worst(ranked) > middle_over_worst(fitted) + 1e-4


@torch.no_grad()
def _step_probs(model, tokenizer, prompt: str, steps: list[str]) -> list[float]:
    from models.process_reward import step_probabilities

    return step_probabilities(model, tokenizer, [(prompt, steps)], max_len=48)[0]


@pytest.mark.parametrize("labels", [[1.0, 0.0], [0.0, 1.0]])
def test_the_prm_moves_each_step_toward_its_label(tokenizer, labels):
    """Math-Shepherd's labels: after one step the step labelled 1 gains on the step labelled 0, whichever of the
    two it is, each read at its own step end (a target read at the wrong position, or labels swapped, would move
    the margin the other way). A fresh model scores both nearly alike, so the margin is what one step moves."""
    rows = [{"prompt": p, "steps": [g + "\n", b + "\n"], "hard": labels, "soft": labels}
            for p, g, b in zip(PROMPTS, GOOD, BAD)]
    old, new = _one_step("prm", {"steps": rows}, tokenizer, lr=0.05)
    sign = 1.0 if labels[0] > labels[1] else -1.0
    for row in rows:
        before, after = (_step_probs(m, tokenizer, row["prompt"], row["steps"]) for m in (old, new))
        assert sign * ((after[0] - after[1]) - (before[0] - before[1])) > 1e-4
