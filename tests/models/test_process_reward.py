"""The PRM's pieces (models/process_reward.py): step ends known exactly, aggregates by hand."""
import math

import pytest

from models.process_reward import STEP_AGGREGATES, collate_steps, encode_steps
from models.tokenizer import build_digit_tokenizer


def test_aggregates_by_hand():
    scores = [0.9, 0.5, 0.8]
    assert STEP_AGGREGATES["min"](scores) == 0.5
    assert STEP_AGGREGATES["product"](scores) == pytest.approx(0.36)
    assert STEP_AGGREGATES["last"](scores) == 0.8
    assert math.isclose(STEP_AGGREGATES["product"]([1.0]), 1.0)


def test_step_ends_are_the_last_token_of_each_step_and_steps_past_max_len_are_dropped_whole():
    tok = build_digit_tokenizer(["Question: 3 + 4 ?\nAnswer: 7 = 3 + 4\n#### 7"])
    prompt, steps = "Question: 3 + 4 ?\nAnswer:", [" 3 + 4 = 7\n", "#### 7"]
    ids, ends = encode_steps(tok, prompt, steps, max_len=64)
    p = len(tok(prompt, add_special_tokens=False)["input_ids"])
    s0 = len(tok(steps[0], add_special_tokens=False)["input_ids"])
    assert ends == [p + s0 - 1, len(ids) - 1] and len(ids) == p + s0 + len(tok(steps[1],
                                                                              add_special_tokens=False)["input_ids"])
    short_ids, short_ends = encode_steps(tok, prompt, steps, max_len=p + s0 + 1)
    assert short_ends == [p + s0 - 1] and len(short_ids) == p + s0
    batch = collate_steps([(ids, ends), (short_ids, short_ends)], pad_id=0)
    assert batch["step_index"].tolist() == [ends, [p + s0 - 1, 0]]
    assert batch["step_valid"].tolist() == [[1.0, 1.0], [1.0, 0.0]]
    assert batch["attention_mask"].sum(-1).tolist() == [len(ids), len(short_ids)]
