"""Bad config fails at start, naming the field; good config and overrides load."""
import pytest

from flows.config import ConfigError, load_config
from flows.rft import RFTConfig


def test_default_and_smoke_configs_load():
    default = load_config(RFTConfig, "rft", "default")
    smoke = load_config(RFTConfig, "rft", "smoke", ["sample.sampling.n=3", "data.n_train=5"])
    assert default.sample.sampling.n >= 4
    assert smoke.sample.sampling.n == 3 and smoke.data.n_train == 5


def test_unknown_key_is_named():
    with pytest.raises(ConfigError, match=r"sample\.sampling\.temprature: Extra inputs are not permitted"):
        load_config(RFTConfig, "rft", "smoke", ["sample.sampling.temprature=0.5"])


def test_wrong_type_is_named():
    with pytest.raises(ConfigError, match=r"base_sft\.optim\.steps: .*integer.*'many'"):
        load_config(RFTConfig, "rft", "smoke", ["base_sft.optim.steps=many"])


def test_out_of_range_is_named():
    with pytest.raises(ConfigError, match=r"rounds: Input should be greater than or equal to 1"):
        load_config(RFTConfig, "rft", "smoke", ["rounds=0"])


def test_missing_store_url_is_named(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("store: {storage_options: {}}\n")
    with pytest.raises(ConfigError, match=r"store\.url: Field required"):
        load_config(RFTConfig, "rft", str(bad))


def test_unknown_config_name_lists_known():
    with pytest.raises(ConfigError, match=r"no config 'nope'.*known: \[.*'smoke'"):
        load_config(RFTConfig, "rft", "nope")


def test_malformed_override():
    with pytest.raises(ConfigError, match="key.path=value"):
        load_config(RFTConfig, "rft", "smoke", ["rounds"])


@pytest.mark.parametrize("name", ["default", "smoke", "plateau"])
def test_every_shipped_rft_config_validates(name):
    cfg = load_config(RFTConfig, "rft", name)
    assert "grounded_calculations" in cfg.select.criteria or name == "smoke"


def test_every_shipped_config_is_valid():
    from flows.config import CONFIG_ROOT
    from winnow.cli import _flows as flows_by_method

    methods = flows_by_method()
    for path in sorted(CONFIG_ROOT.glob("*/*.yaml")):
        config_model, _ = methods[path.parent.name]
        load_config(config_model, path.parent.name, path.stem)
