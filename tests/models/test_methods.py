"""The training-method registry: every method builds from its own config, bad names fail naming the field and
the allowed values, and the losses the methods call through the registry are the numbers they used to be."""
import math

import pytest
import torch
from pydantic import ValidationError

from models.losses import LOSSES, get_loss, token_logprobs
from models.methods import (METHODS, DPOTrainConfig, EmptyTable, MethodEntry, RewardModelTrainConfig, RRTFTrainConfig,
                            SFTConfig, SFTMethod, TrainConfig, get_method, register_method)
from models.methods.model_kinds import CAUSAL_LM
from models.optim import OptimConfig
from models.tiny_llama import ModelSize
from models.tokenizer import build_digit_tokenizer

SIZE = ModelSize(hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64, max_positions=64)
TEXTS = ["Question: 3 + 4 ?\nAnswer: 7", "Question: 12 * 3 ?\nAnswer: 36", "Answer: 5"]
PAIR = {"prompt": "Question: 3 + 4 ?\nAnswer:", "chosen": " 7", "rejected": " 8"}
# hand-made rows of every table a method reads (tasks/selection/preferences.py and reference_logprobs write them)
ROWS = {
    "sft": {"examples": [{"prompt": "Question: 3 + 4 ?\nAnswer:", "completion": " 7"}] * 3},
    "reward_model": {"preferences": [PAIR, PAIR | {"rejected": " 9"}]},
    "dpo": {"preferences": [PAIR, PAIR], "reference": [{"chosen_logp": -3.0, "rejected_logp": -2.0}] * 2},
    "rrtf": {"preferences": [{"prompt": PAIR["prompt"], "texts": [" 7", " 8", " 1"], "scores": [1.0, 0.0, 0.0]}]},
    "prm": {"steps": [{"prompt": PAIR["prompt"], "steps": [" 3+4=7\n", "#### 7"], "hard": [1.0, 1.0],
                       "soft": [0.5, 1.0]}] * 2},
}


@pytest.fixture(scope="module")
def tokenizer():
    return build_digit_tokenizer(TEXTS)


def test_every_method_is_registered_with_a_typed_config_and_registered_losses():
    expected = {"sft": SFTConfig, "reward_model": RewardModelTrainConfig, "dpo": DPOTrainConfig,
                "rrtf": RRTFTrainConfig}
    assert set(expected) <= set(METHODS) and all(METHODS[name].config is c for name, c in expected.items())
    for name, entry in METHODS.items():
        assert entry.name == name and entry.config.method == name and name in ROWS  # ROWS: its hand-made tables
        assert issubclass(entry.config, TrainConfig) and set(entry.losses) <= set(LOSSES)
        assert entry.config().optim.loss == entry.losses[0]  # each method defaults to its own loss
    assert METHODS["reward_model"].losses == ("pairwise_rm", "ranking_rm")


@pytest.mark.parametrize("name", sorted(METHODS))
def test_every_method_builds_from_its_config_and_computes_a_loss(name, tokenizer):
    entry = get_method(name)
    cfg = entry.config(model=SIZE, optim={"max_len": 32, "batch_size": 2})
    built = entry.build_data(ROWS[name], tokenizer, cfg)
    assert built.rows == len(next(iter(ROWS[name].values()))) and built.tokens > 0
    model = entry.model.wrap(entry.model.fresh(cfg.model, tokenizer, cfg.init_seed))
    method = entry.make(built.data, cfg, tokenizer.pad_token_id)
    units = method.epoch_units(epoch=0, seed=0)
    summed, extra = method.loss(model, method.collate(units))
    assert summed.ndim == 0 and torch.isfinite(summed) and summed.requires_grad
    assert set(extra) <= {"accuracy", "step_accuracy"}


def test_entries_name_their_tables_and_the_reward_model_table_follows_the_loss():
    assert get_method("sft").tables is None  # the SFT stage gathers its sources' rows itself
    assert get_method("dpo").tables(DPOTrainConfig()) == {"preferences": "pairs_train", "reference": "reference"}
    assert get_method("rrtf").tables(RRTFTrainConfig()) == {"preferences": "groups_train"}
    tables = get_method("reward_model").tables
    assert tables(RewardModelTrainConfig()) == {"preferences": "pairs_train"}
    assert tables(RewardModelTrainConfig(optim={"loss": "ranking_rm"})) == {"preferences": "groups_train"}


def test_an_empty_table_names_itself(tokenizer):
    with pytest.raises(EmptyTable, match="groups_train is empty: no prompt had responses with different scores"):
        get_method("rrtf").build_data({"preferences": []}, tokenizer, RRTFTrainConfig())
    with pytest.raises(EmptyTable, match="pairs_train is empty"):
        get_method("reward_model").build_data({"preferences": []}, tokenizer, RewardModelTrainConfig())


def test_unknown_method_names_the_field_and_the_known_methods():
    with pytest.raises(ValueError, match=r"method: unknown training method 'ppo'; "
                                         r"known: \['dpo', 'prm', 'reward_model', 'rrtf', 'sft'\]"):
        get_method("ppo")


@pytest.mark.parametrize("config, loss, allowed", [
    (RewardModelTrainConfig, "sft", r"\['pairwise_rm', 'ranking_rm'\]"),
    (SFTConfig, "dpo", r"\['sft'\]"),
    (DPOTrainConfig, "rrtf", r"\['dpo'\]"),
    (RRTFTrainConfig, "ranking_rm", r"\['rrtf'\]"),
])
def test_a_loss_the_method_does_not_allow_names_the_field_and_the_allowed_losses(config, loss, allowed):
    with pytest.raises(ValidationError, match=rf"optim.loss: '{loss}' does not train method "
                                              rf"'{config.method}'; allowed: {allowed}"):
        config(optim={"loss": loss})
    with pytest.raises(ValidationError, match=rf"optim.loss: unknown loss 'nope' for method '{config.method}'; "
                                              rf"allowed: {allowed}"):
        config(optim={"loss": "nope"})


def test_yaml_shapes_and_method_only_fields():
    rm = RewardModelTrainConfig.model_validate({"optim": {"loss": "ranking_rm", "steps": 3}})
    assert rm.optim.loss == "ranking_rm" and rm.optim.steps == 3
    assert DPOTrainConfig.model_validate({"optim": {"steps": 5}, "beta": 0.5}).optim.loss == "dpo"  # default loss
    assert DPOTrainConfig(optim=OptimConfig(steps=5)).optim.loss == "dpo"  # an OptimConfig without a loss too
    sft = SFTConfig.model_validate({"batching": "packed", "pack_len": 64})
    assert (sft.batching, sft.pack_len, sft.optim.loss) == ("packed", 64, "sft")
    with pytest.raises(ValidationError, match="batching"):  # SFT's fields belong to SFT only
        DPOTrainConfig(batching="packed")
    with pytest.raises(ValidationError, match="beta"):
        SFTConfig(beta=0.1)
    with pytest.raises(ValidationError, match="beta"):
        DPOTrainConfig(beta=0)
    shared = {"optim": {"steps": 4}}  # YAML anchors share one dict between configs: it must stay untouched
    RRTFTrainConfig.model_validate(shared)
    assert shared == {"optim": {"steps": 4}}


def test_register_method_checks_the_entry():
    entry = get_method("dpo")
    with pytest.raises(ValueError, match="DPOTrainConfig.method is 'dpo', the entry is 'dpo2'"):
        register_method(MethodEntry(**{**vars(entry), "name": "dpo2"}))
    with pytest.raises(ValueError, match=r"losses \['nope'\] not registered"):
        register_method(MethodEntry(**{**vars(entry), "losses": ("nope",)}))
    assert entry.model is CAUSAL_LM and get_method("reward_model").model.lora_modules_to_save == ("score",)


def _hand_batch() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    ids = torch.tensor([[1, 5, 6, 7, 2], [1, 4, 2, 0, 0]])  # (B=2, T=5), row 2 right-padded
    loss_mask = torch.tensor([[0, 0, 1, 1, 1], [0, 0, 1, 0, 0]])  # completion tokens only
    return {"input_ids": ids, "attention_mask": (ids != 0).long(), "loss_mask": loss_mask,
            "logits": torch.randn(2, 5, 9)}  # (B, T, V)


def test_sft_loss_through_the_registry_is_the_old_inline_computation():
    batch = _hand_batch()
    logits, ids = batch["logits"], batch["input_ids"]
    # what SFTMethod.loss computed inline before the registry (models/train_methods.py)
    mask = batch["loss_mask"][:, 1:].float()  # (B, T-1)
    inline = -(token_logprobs(logits, ids) * mask).sum()
    through_registry = get_loss(SFTConfig().optim.loss)(logits, ids, batch["loss_mask"])
    assert torch.equal(through_registry, inline)  # bit for bit
    by_hand = -sum(math.log(torch.softmax(logits[b, t - 1], -1)[ids[b, t]].item())
                   for b in range(2) for t in range(1, 5) if batch["loss_mask"][b, t])
    assert through_registry.item() == pytest.approx(by_hand, rel=1e-5)

    class Logits(torch.nn.Module):  # a "model" that returns the hand-made logits
        def forward(self, input_ids, attention_mask):
            return type("Out", (), {"logits": logits})()

    method = SFTMethod([], pad_id=0, batching="padded")
    summed, _ = method.loss(Logits(), {k: v for k, v in batch.items() if k != "logits"})
    assert torch.equal(summed, inline)
