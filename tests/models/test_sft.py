import math

import pytest
import torch

from models.losses import get_loss, sft_token_sum_loss
from models.sft_data import TokenizedExample, collate
from models.optim import OptimConfig, lr_factor


def test_sft_loss_hand_computed_and_masks_prompt_and_padding():
    # vocab 2, T=3: logits at t predict token t+1; only position 1->2 target is in the completion mask
    logits = torch.zeros(2, 3, 2)
    logits[0, 1] = torch.tensor([0.0, math.log(3.0)])  # p(token 1) = 3/4
    logits[0, 0] = torch.tensor([5.0, -5.0])  # predicts the prompt token: must be ignored
    logits[1, 0] = torch.tensor([math.log(3.0), 0.0])  # row 2: p(token 0) = 3/4, then p(token 1) = 1/2
    ids = torch.tensor([[0, 0, 1], [0, 0, 1]])
    mask = torch.tensor([[0, 0, 1], [0, 1, 1]])
    # a sum over the completion tokens of the batch (the loop divides by the global token count)
    expected = -math.log(0.75) - math.log(0.75) - math.log(0.5)
    assert sft_token_sum_loss(logits, ids, mask).item() == pytest.approx(expected, abs=1e-6)
    assert get_loss("sft") is sft_token_sum_loss
    with pytest.raises(KeyError, match="unknown loss 'nope'"):
        get_loss("nope")


def test_collate_right_pads_and_masks():
    batch = collate([TokenizedExample([5, 6, 7], [0, 1, 1]), TokenizedExample([5], [0])], pad_id=0)
    assert batch["input_ids"].tolist() == [[5, 6, 7], [5, 0, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    assert batch["loss_mask"].tolist() == [[0, 1, 1], [0, 0, 0]]


def test_lr_schedule_warms_up_then_decays_to_floor():
    cfg = OptimConfig(steps=110, warmup_steps=10, min_lr_ratio=0.1)
    assert lr_factor(0, cfg) == pytest.approx(0.1)
    assert lr_factor(9, cfg) == pytest.approx(1.0)
    assert lr_factor(10, cfg) == pytest.approx(1.0)
    assert lr_factor(60, cfg) == pytest.approx(0.55)
    assert lr_factor(110, cfg) == pytest.approx(0.1)


def test_bucketed_epochs_cover_every_example_once_in_length_grouped_batches():
    from models.methods import SFTMethod

    examples = [TokenizedExample([i] * (1 + i % 5), [1] * (1 + i % 5)) for i in range(32)]
    method = SFTMethod(examples, pad_id=0, batching="bucketed", batch_size=8)
    order = method.epoch_units(epoch=0, seed=3)
    assert sorted(order) == list(range(32)) and order != method.epoch_units(epoch=1, seed=3)
    batches = [order[i: i + 8] for i in range(0, 32, 8)]
    # within one window the batches are cut from a length-sorted list: each batch spans few lengths
    assert all(max(len(examples[i].input_ids) for i in b) - min(len(examples[i].input_ids) for i in b) <= 2
               for b in batches)


def test_sft_targets_use_the_models_chat_template_and_end_with_eos(tmp_path):
    """Training encodes a prompt exactly as sampling does (the chat template when there is one), and the target
    ends with EOS, so the trained model stops where generation stops; the pad token is not EOS."""
    from generation_assets import gpt2_tokenizer
    from models.sft_data import tokenize_pair
    from ray_cluster.model_inputs import encode_for_model

    tok = gpt2_tokenizer(tmp_path / "tok")
    assert tok.pad_token_id is not None and tok.pad_token_id != tok.eos_token_id
    plain = tokenize_pair(tok, "2+2?", " 4", max_len=64)
    assert plain.input_ids[-1] == tok.eos_token_id and plain.input_ids[: -2] == encode_for_model(tok, "2+2?", True)
    tok.chat_template = "{% for m in messages %}<user>{{ m['content'] }}</user>{% endfor %}<bot>"
    templated = tokenize_pair(tok, "2+2?", " 4", max_len=64)
    prompt = encode_for_model(tok, "2+2?", True)
    assert tok.decode(prompt) == "<user>2+2?</user><bot>" and templated.input_ids[: len(prompt)] == prompt
    assert templated.input_ids[-1] == tok.eos_token_id and sum(templated.loss_mask) == len(templated.input_ids) - len(prompt)
    assert tokenize_pair(tok, "2+2?", " 4", 64, chat_template=False).input_ids == plain.input_ids
