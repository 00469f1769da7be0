import pytest
from transformers import AutoTokenizer

from models.tokenizer import build_digit_tokenizer
from tasks.data.tiny_arith import TinyArithSpec, generate_problems, to_completion, to_prompt


@pytest.fixture(scope="module")
def texts() -> list[str]:
    train, test = generate_problems(TinyArithSpec(seed=3, n_train=300, n_test=50))
    return [to_prompt(r["question"]) + to_completion(r["answer"]) for r in train + test]


@pytest.fixture(scope="module")
def tokenizer(texts):
    return build_digit_tokenizer(texts[:300])


def test_digits_are_single_tokens(tokenizer):
    ids = tokenizer.encode("1234 + 56", add_special_tokens=False)
    assert tokenizer.convert_ids_to_tokens(ids) == ["1", "2", "3", "4", " +", " ", "5", "6"]


def test_symbols_and_newlines_are_single_tokens(tokenizer):
    ids = tokenizer.encode("<<3*4=12>>12\n#### 12", add_special_tokens=False)
    tokens = tokenizer.convert_ids_to_tokens(ids)
    assert tokens[:9] == ["<<", "3", "*", "4", "=", "1", "2", ">>", "1"]
    assert "\n" in tokens and tokens.count("#") == 4
    assert tokenizer.unk_token_id not in ids


def test_exact_round_trip_on_unseen_problems(tokenizer, texts):
    held_out = texts[300:350]
    assert len(held_out) == 50 and all("\n" in t for t in held_out)
    for text in held_out:
        ids = tokenizer.encode(text, add_special_tokens=False)
        assert tokenizer.unk_token_id not in ids
        assert tokenizer.decode(ids) == text
        with_specials = [tokenizer.bos_token_id, *ids, tokenizer.eos_token_id]
        assert tokenizer.decode(with_specials, skip_special_tokens=True) == text


def test_special_tokens(tokenizer):
    assert (tokenizer.pad_token, tokenizer.bos_token, tokenizer.eos_token, tokenizer.unk_token) == (
        "<pad>", "<s>", "</s>", "<unk>")
    assert [tokenizer.pad_token_id, tokenizer.bos_token_id, tokenizer.eos_token_id,
            tokenizer.unk_token_id] == [0, 1, 2, 3]
    assert tokenizer.encode("12", add_special_tokens=True) == tokenizer.encode("12", add_special_tokens=False)
    assert len(tokenizer) < 300


def test_save_and_load_identical(tokenizer, texts, tmp_path):
    tokenizer.save_pretrained(tmp_path)
    loaded = AutoTokenizer.from_pretrained(tmp_path)
    for text in texts[300:320]:
        ids = tokenizer.encode(text, add_special_tokens=False)
        assert loaded.encode(text, add_special_tokens=False) == ids
        assert loaded.decode(ids) == text
    assert loaded.eos_token_id == tokenizer.eos_token_id and loaded.pad_token_id == tokenizer.pad_token_id
