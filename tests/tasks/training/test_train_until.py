"""The base trained until its samples pass: how each added segment is configured, and the limits checked before any
training starts. The loop itself runs in the RRTF smoke test (tests/flows/test_rrtf_smoke.py)."""
from __future__ import annotations

import pytest
from pydantic import ValidationError

from flows.config import ConfigError, load_config
from flows.rrtf import RRTFConfig
from tasks.training.train import SFTConfig
from tasks.training.train_until import PassRateStop, check_rule, extension

SMALL = {"hidden_size": 32, "num_layers": 2, "num_heads": 2, "intermediate_size": 64, "max_positions": 128}


def _sft(**optim) -> SFTConfig:
    return SFTConfig(model=SMALL, optim={"steps": 100, "lr": 1e-2, "warmup_steps": 10, "seed": 3} | optim)


def test_a_segment_continues_at_the_rate_a_constant_schedule_ended_with():
    rule = PassRateStop(pass_rate=0.1, extend_steps=20, extend_warmup=4, max_steps=300)
    added = extension(_sft(min_lr_ratio=1.0), rule, done=100)
    assert added.optim.steps == 20 and added.optim.warmup_steps == 4 and added.optim.min_lr_ratio == 1.0
    assert added.optim.lr == pytest.approx(1e-2)
    assert added.model == _sft().model and added.optim.batch_size == _sft().optim.batch_size


def test_a_segment_after_an_annealed_base_stays_annealed():
    # cosine from 1e-2 to 0.1 x over 100 steps: step 99 is 1e-3 + 9e-3 * (1 + cos(pi * 89/90)) / 2
    import math

    added = extension(_sft(min_lr_ratio=0.1), PassRateStop(pass_rate=0.1, max_steps=300), done=100)
    assert added.optim.lr == pytest.approx(1e-3 + 9e-3 * 0.5 * (1 + math.cos(math.pi * 89 / 90)))


def test_each_segment_has_its_own_data_order_and_the_same_segment_the_same_one():
    rule = PassRateStop(pass_rate=0.1, max_steps=300)
    seeds = [extension(_sft(), rule, done).optim.seed for done in (100, 125, 150)]
    assert len(set(seeds) | {_sft().optim.seed}) == 4
    assert extension(_sft(), rule, 125).optim.seed == seeds[1]
    assert extension(_sft(seed=4), rule, 125).optim.seed != seeds[1]


def test_a_limit_below_the_first_segment_is_refused_before_training():
    with pytest.raises(ValueError, match=r"base_stop.max_steps=50 is below base_sft.optim.steps=100"):
        check_rule(_sft(), PassRateStop(pass_rate=0.1, max_steps=50))


def test_the_rule_needs_a_target_in_0_1_named_in_the_config_error():
    with pytest.raises(ValidationError, match="pass_rate"):
        PassRateStop(pass_rate=0.0, max_steps=10)
    with pytest.raises(ConfigError, match=r"default.yaml: base_stop.pass_rate: Input should be less than or equal"):
        load_config(RRTFConfig, "rrtf", "default", ["base_stop.pass_rate=1.5"])


def test_a_rule_without_a_sampler_and_labeller_to_probe_with_is_refused():
    with pytest.raises(ValueError, match="base_stop: this recipe does not sample and label its training problems"):
        check_rule(_sft(), PassRateStop(pass_rate=0.1, max_steps=300), can_probe=False)
