import pytest
import torch

from models.reward_model import (build_tiny_reward_model, encode_for_reward, load_reward_model, rewards_at_eos)
from models.tiny_llama import ModelSize, build_tiny_llama, save_model_folder
from models.tokenizer import build_digit_tokenizer

SIZE = ModelSize(hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64, max_positions=64)
TEXTS = ["Question: 3 + 4 ?\nAnswer: 7", "Question: 12 * 3 ?\nAnswer: 36 , because 12 * 3 = 36", "x"]


@pytest.fixture(scope="module")
def rm():
    tokenizer = build_digit_tokenizer(TEXTS)
    return build_tiny_reward_model(SIZE, tokenizer, seed=0).eval(), tokenizer


def test_reward_is_the_value_head_at_the_eos_token(rm):
    model, tokenizer = rm
    enc = encode_for_reward(tokenizer, TEXTS[:1], max_len=64)
    ids = enc["input_ids"][0]
    assert ids[-1].item() == tokenizer.eos_token_id and enc["eos_index"].tolist() == [len(ids) - 1]
    # by hand: the head applied to the last layer's hidden state at the final (EOS) position
    with torch.no_grad():
        hidden = model.model(input_ids=ids[None]).last_hidden_state[0, -1]
        expected = model.score(hidden).item()
    assert rewards_at_eos(model, enc["input_ids"], enc["attention_mask"], enc["eos_index"]).item() == (
        pytest.approx(expected, abs=1e-5))


def test_padding_does_not_change_rewards(rm):
    model, tokenizer = rm
    alone = [rewards_at_eos(model, **encode_for_reward(tokenizer, [t], 64)).item() for t in TEXTS]
    batched = rewards_at_eos(model, **encode_for_reward(tokenizer, TEXTS, 64)).tolist()
    assert batched == pytest.approx(alone, abs=1e-5)
    assert len(set(round(r, 4) for r in alone)) == 3  # different texts, different rewards


def test_truncation_keeps_the_eos(rm):
    _, tokenizer = rm
    enc = encode_for_reward(tokenizer, [TEXTS[1]], max_len=8)
    assert enc["input_ids"].shape == (1, 8) and enc["input_ids"][0, -1].item() == tokenizer.eos_token_id


def test_loading_checks_it_is_a_reward_model(rm, tmp_path):
    model, tokenizer = rm
    save_model_folder(model, tokenizer, tmp_path / "rm")
    loaded, _ = load_reward_model(tmp_path / "rm")
    enc = encode_for_reward(tokenizer, TEXTS, 64)
    assert torch.allclose(rewards_at_eos(loaded, **enc), rewards_at_eos(model, **enc), atol=1e-6)
    save_model_folder(build_tiny_llama(SIZE, tokenizer, seed=0), tokenizer, tmp_path / "lm")
    with pytest.raises(ValueError, match="expected a reward model"):
        load_reward_model(tmp_path / "lm")
