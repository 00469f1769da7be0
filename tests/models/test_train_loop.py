"""The generic loop: it learns, accumulation and packing change nothing they shouldn't, and a run resumed from
a checkpoint is the uninterrupted run, step for step."""
import copy
import random

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from models.reward_model import EOSReward
from models.sft_data import TokenizedExample
from models.optim import OptimConfig
from models.train_loop import TrainState, global_batches, run_training
from models.methods import DPOMethod, RewardModelMethod, RRTFMethod, SFTMethod

CFG = LlamaConfig(vocab_size=24, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                  num_key_value_heads=2, max_position_embeddings=64, pad_token_id=0, eos_token_id=2, bos_token_id=1)


def _model(seed=0):
    torch.manual_seed(seed)
    return LlamaForCausalLM(CFG)


def _examples(n=40, seed=0):
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        a = rng.randrange(3, 12)
        prompt = [1] + [3 + a % 7] * 2
        completion = [3 + (a + k) % 20 for k in range(a)] + [2]  # a learnable sequence, variable length
        out.append(TokenizedExample(prompt + completion, [0] * len(prompt) + [1] * len(completion)))
    return out


def _opt(**kw):
    return OptimConfig(**({"steps": 12, "batch_size": 8, "lr": 3e-3, "warmup_steps": 2} | kw))


def test_sft_learns_and_every_example_is_seen_once_per_epoch():
    examples, seen = _examples(), []
    state = run_training(_model(), SFTMethod(examples, 0, "padded", 8), _opt(steps=10), torch.device("cpu"),
                         on_step=lambda info: seen.append((info.epoch, info.example_ids)))
    losses = [h["loss"] for h in state.history]
    assert losses[-1] < losses[0] * 0.8
    epoch0 = [i for e, ids in seen if e == 0 for i in ids]
    assert sorted(epoch0) == list(range(40))  # 40 examples / 8 = 5 batches, no repeats, none skipped
    assert {"loss", "lr", "grad_norm", "tokens_per_s"} <= set(state.history[0])


def test_last_short_batch_is_kept():
    method = SFTMethod(_examples(n=19), 0, "padded", 8)
    sizes = [len(units) for _, (e, units) in zip(range(3), global_batches(method, 8, 0, 0))]
    assert sizes == [8, 8, 3]


def test_gradient_accumulation_matches_one_big_batch():
    a, b = _model(), _model()
    run_training(a, SFTMethod(_examples(), 0, "padded", 8), _opt(steps=4), torch.device("cpu"))
    run_training(b, SFTMethod(_examples(), 0, "padded", 8), _opt(steps=4, grad_accum=4), torch.device("cpu"))
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.allclose(pa, pb, atol=1e-5)


def test_resume_from_a_checkpoint_is_the_uninterrupted_run():
    full, checkpoints = _model(), {}
    reference = run_training(full, SFTMethod(_examples(), 0, "packed", 4, pack_len=48), _opt(checkpoint_every=5),
                             torch.device("cpu"))

    def keep(state: TrainState, model) -> None:
        checkpoints[state.step] = (copy.deepcopy(state), copy.deepcopy(model.state_dict()))

    class Killed(Exception):
        pass

    def kill_at_7(info):
        if info.step == 7:
            raise Killed

    first = _model()
    with pytest.raises(Killed):
        run_training(first, SFTMethod(_examples(), 0, "packed", 4, pack_len=48), _opt(checkpoint_every=5),
                     torch.device("cpu"), on_step=kill_at_7, on_checkpoint=lambda s: keep(s, first))
    state, weights = checkpoints[5]  # "killed" after step 7; the last checkpoint is step 5
    resumed = _model(seed=123)  # a fresh process: different init, overwritten by the checkpoint
    resumed.load_state_dict(weights)
    seen = []
    final = run_training(resumed, SFTMethod(_examples(), 0, "packed", 4, pack_len=48), _opt(checkpoint_every=5),
                         torch.device("cpu"), state=copy.deepcopy(state),
                         on_step=lambda info: seen.append(info.step))
    assert seen == list(range(6, 13))
    assert [h["loss"] for h in final.history] == pytest.approx([h["loss"] for h in reference.history], abs=1e-6)
    for pa, pb in zip(full.parameters(), resumed.parameters()):
        assert torch.allclose(pa, pb, atol=1e-6)


def test_reward_model_dpo_and_rrtf_methods_train():
    from transformers import LlamaForSequenceClassification

    torch.manual_seed(0)
    rm = EOSReward(LlamaForSequenceClassification(CFG.__class__(**(CFG.to_dict() | {"num_labels": 1}))))
    good, bad = [[1, 5, 6, 7, 2], [1, 5, 6, 2]], [[1, 9, 9, 2], [1, 9, 2]]
    groups = [[g, b] for g in good for b in bad] * 4
    state = run_training(rm, RewardModelMethod(groups, 0, "pairwise_rm"), _opt(steps=15, batch_size=4),
                         torch.device("cpu"))
    assert state.history[-1]["loss"] < state.history[0]["loss"] and state.history[-1]["accuracy"] == 1.0

    ex = _examples(8)
    pairs = [(ex[i], ex[i + 1]) for i in range(0, 8, 2)]
    dpo = run_training(_model(), DPOMethod(pairs, [(-30.0, -30.0)] * 4, 0, beta=0.1), _opt(steps=6, batch_size=4),
                       torch.device("cpu"))
    assert dpo.history[-1]["loss"] < dpo.history[0]["loss"]

    groups = [[(ex[i], 1.0), (ex[i + 1], 0.0), (ex[i + 2], 0.0)] for i in range(0, 6, 3)]
    rrtf = run_training(_model(), RRTFMethod(groups, 0), _opt(steps=6, batch_size=2), torch.device("cpu"))
    assert rrtf.history[-1]["loss"] < rrtf.history[0]["loss"]
