"""The online-RL stage's own pieces: the prompt stream and per-sample-bounded rewards (issue 16, item 5)."""
from __future__ import annotations

import time

import pytest

from ray_cluster.generation import TokenSample
from tasks.labelling.label import LabelConfig
from tasks.labelling.labellers import register_labeller
from tasks.training.online_rl_steps import Actors, label_samples, prompt_order

ROWS = [{"id": f"p{i}"} for i in range(5)]


def test_the_prompt_stream_crosses_epoch_boundaries_without_skipping_or_repeating():
    first = [r["id"] for r in prompt_order(ROWS, seed=3, start=0, count=5)]
    second = [r["id"] for r in prompt_order(ROWS, seed=3, start=5, count=5)]
    assert sorted(first) == sorted(second) == [r["id"] for r in ROWS]  # each epoch is every row once
    assert first != second  # a fresh shuffle per epoch
    # a batch that crosses the boundary is the end of epoch 0 then the start of epoch 1
    across = [r["id"] for r in prompt_order(ROWS, seed=3, start=3, count=4)]
    assert across == first[3:] + second[:2]
    # a pure function of the position: a resumed run takes exactly these prompts
    assert [r["id"] for r in prompt_order(ROWS, seed=3, start=3, count=4)] == across
    assert [r["id"] for r in prompt_order(ROWS, seed=4, start=0, count=5)] != first


@register_labeller("test_hangs_on_seven")
def _hangs_on_seven(completion: str, problem: dict, options) -> dict:
    # a verifier that never returns on one input (as math normalisers do on pathological strings)
    if "7" in completion:
        time.sleep(3600)
    return {"reward": 1.0, "correct": True, "pred": completion, "status": "ok", "error": None}


class _Chars:
    """A tokenizer whose tokens are characters: decode is exact."""

    def decode(self, ids, skip_special_tokens=True):
        return "".join(chr(i) for i in ids)


def test_a_hung_verifier_fails_its_sample_alone_and_the_step_goes_on():
    actors = Actors(engines=[], trainer=None, tokenizer=_Chars(), encoded={}, pad_id=0, max_tokens=8)
    samples = [[TokenSample(token_ids=[ord(c) for c in text], logprobs=[0.0] * len(text), eos=True)
                for text in ("12", "17", "3")]]
    label = LabelConfig(labellers=[{"name": "test_hangs_on_seven"}], sample_timeout_s=1.0,
                        sandbox={"wall_seconds": 0.5})
    started = time.time()
    labels = label_samples(actors, [{"id": "p0"}], samples, label)
    assert time.time() - started < 10
    assert [lab["status"] for lab in labels] == ["ok", "label_timeout", "ok"]
    assert [lab["reward"] for lab in labels] == [1.0, 0.0, 1.0]
    assert [lab["text"] for lab in labels] == ["12", "17", "3"]


def test_an_over_long_prompt_fails_before_any_actor_starts(tmp_path):
    from generation_assets import build_model_folder

    from ray_cluster.folders import RemoteFolder
    from ray_cluster.rl_config import OnlineRLConfig
    from tasks.training.online_rl_steps import start_actors

    folder = build_model_folder(tmp_path / "policy")  # a context of 256 positions
    rows = [{"id": "ok", "prompt": "Question: Tom has 3 apples."},
            {"id": "long", "prompt": " ".join(["Question: Tom has 3 apples."] * 100)}]
    with pytest.raises(ValueError, match=r"problem row 1 \(id 'long'\): prompt has \d+ tokens; the model's context "
                                         r"is 256"):
        start_actors(RemoteFolder(uri=str(folder)), folder, rows, OnlineRLConfig(), ctx=None)


@pytest.mark.parametrize("override, message", [
    ("sft_first=false", "sft_first: false starts RL from a pretrained model: set `model:`"),
    ("label={labellers: [{name: math_answer}, {name: instruction_reward}]}",
     "label.instruction_reward is required by the instruction_reward labeller"),
    ("label={labellers: [{name: process_reward}], process_reward: {model: /tmp/prm, aggregate: mean}}",
     "unknown aggregate 'mean'; known: \\['last', 'min', 'product'\\]"),
])
def test_online_configs_that_cannot_run_fail_at_load(override, message):
    from flows.config import ConfigError, load_config
    from flows.grpo import GRPOConfig

    with pytest.raises(ConfigError, match=message):
        load_config(GRPOConfig, "grpo", "smoke", [override])
