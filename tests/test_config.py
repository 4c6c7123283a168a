import pytest

from trainable.config import Config, ConfigError, flatten, parse_value


def test_defaults_are_the_reports_baseline_and_round_trip():
    cfg = Config()
    assert (cfg.aug.rotate_limit, cfg.aug.rotate_p) == (25.0, 0.5)
    assert (cfg.loss.ce, cfg.loss.lovasz, cfg.loss.aux_weight) == (1.0, 2.0, 0.4)
    assert cfg.model.max_params == 2_000_000
    assert Config.from_dict(cfg.to_dict()) == cfg


@pytest.mark.parametrize("d", [
    {"aug": {"rotate_limit": 10}},
    {"aug.rotate_limit": 10},
    {"aug/rotate_limit": 10},
])
def test_nested_dotted_and_tune_flattened_keys(d):
    assert Config.from_dict(d).aug.rotate_limit == 10.0


@pytest.mark.parametrize("d, message", [
    ({"aug": {"rotation": 5}}, "unknown config key 'aug.rotation': valid keys in 'aug' are rotate_limit"),
    ({"augment": {"rotate_limit": 5}}, "unknown config key 'augment.rotate_limit': groups are data, aug"),
    ({"train": {"epochs": 2.5}}, "train.epochs=2.5: expected a whole number"),
    ({"train": {"epochs": 0}}, "train.epochs=0: out of range [1, 100000]"),
    ({"aug": {"rotate_p": 1.5}}, "aug.rotate_p=1.5: out of range [0, 1]"),
    ({"aug": {"flip_swap": "yes"}}, "aug.flip_swap='yes': expected true or false"),
    ({"model": {"arch": "pspnet"}}, "model.arch='pspnet': valid values are unet, unetplusplus, fpn"),
    ({"optim": {"lr": float("nan")}}, "optim.lr=nan: expected a finite number"),
    ({"aug": {"scale_min": 1.5, "scale_max": 1.2}}, "aug.scale_min (1.5) must not exceed aug.scale_max (1.2)"),
    ({"loss": {"ce": 0, "lovasz": 0}}, "at least one of loss.ce"),
    ({"data": {"image_size": 100}}, "data.image_size=100: must be a multiple of 32"),
    ({"train": {"tta_scales": [1.0, -0.5]}}, "train.tta_scales=[1.0, -0.5]: expected a list of positive numbers"),
])
def test_bad_keys_and_values_name_the_key(d, message):
    with pytest.raises(ConfigError) as e:
        Config.from_dict(d)
    assert message in str(e.value)


def test_flatten_and_parse_value():
    assert flatten({"a": {"b": 1, "c": {"d": 2}}, "e/f": 3}) == {"a.b": 1, "a.c.d": 2, "e.f": 3}
    assert parse_value("aug.flip_swap", "false") is False
    assert parse_value("train.epochs", "7") == 7
    assert parse_value("optim.lr", "3e-4") == pytest.approx(3e-4)
    assert parse_value("train.tta_scales", "0.75,1,1.25") == (0.75, 1.0, 1.25)
    assert parse_value("model.arch", "fpn") == "fpn"
    with pytest.raises(ConfigError, match=r"train\.epochs='x': expected int"):
        parse_value("train.epochs", "x")
    with pytest.raises(ConfigError, match="unknown config key"):
        parse_value("train.epoch", "3")
