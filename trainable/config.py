"""The typed training configuration.

A config is a nested dict with the groups ``data``, ``aug``, ``loss``, ``model``, ``optim`` and
``train``. The dataclasses below give every key its type, its allowed values and its default;
the defaults are the baseline recipe the face-parsing reports converged on. ``from_dict`` accepts
nested dicts, dotted keys (``aug.rotate_limit``) and Ray Tune's flattened keys
(``aug/rotate_limit``), and rejects an unknown key or a bad value with a message naming it.

This module imports nothing heavy so that search spaces can use it without torch.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trainable.audit import MIRRORED_POLICIES
from trainable.errors import UserError

__all__ = [
    "AugConfig",
    "Config",
    "ConfigError",
    "DataConfig",
    "LossConfig",
    "ModelConfig",
    "OptimConfig",
    "TrainConfig",
    "default_of",
    "flatten",
    "merge_flags",
    "parse_overrides",
    "parse_value",
    "with_flags",
]

ARCHS = ("unet", "unetplusplus", "fpn", "deeplabv3plus", "upernet", "segformer")
CLASS_WEIGHT_SCHEMES = ("none", "report", "inverse_freq")
OPTIMIZERS = ("adamw", "sgd")
SCHEDULES = ("poly", "cosine", "constant")


class ConfigError(UserError):
    """A config key or value that cannot be used; the message names it and the fix."""


def _f(default: Any, help: str, *, lo: float | None = None, hi: float | None = None,
       choices: tuple | None = None, lo_open: bool = False) -> Any:
    """A config field: its default, what it means, and its allowed values (``lo_open``: ``lo`` itself is not)."""
    meta = {"help": help, "lo": lo, "hi": hi, "choices": choices, "lo_open": lo_open}
    if isinstance(default, (list, tuple)):
        return field(default_factory=lambda: tuple(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class DataConfig:
    root: str = _f("", "data set folder (course or generic layout); empty = built-in synthetic set")
    image_size: int = _f(512, "side in pixels that images are trained and predicted at", lo=32, hi=4096)
    num_workers: int = _f(2, "DataLoader worker processes", lo=0, hi=64)
    cache_dir: str = _f("", "local folder for the decoded-array cache (and the stats cache when the data folder "
                            "is read-only); empty = $FACESEARCH_CACHE or ~/.cache/facesearch")
    array_cache: bool = _f(True, "decode and resize the data once into memory-mapped arrays in cache_dir, shared "
                                 "by every trial on a machine")
    max_train: int = _f(0, "use only the first N training pairs (0 = all)", lo=0)
    max_val: int = _f(0, "use only the first N validation pairs (0 = all)", lo=0)
    val_fraction: float = _f(0.1, "share of the training pairs held out for validation when the data has no "
                                  "validation split (e.g. the 2025 release)", lo=0, hi=1, lo_open=True)
    holdout: str = _f("", "file listing the held-out training images, one name a line (search writes it into "
                          "the experiment, so retrain and tta use the same split); empty = drawn by val_fraction")
    train_on: str = _f("train", "train on train, or on train+val (val is then no longer held out)",
                       choices=("train", "train+val"))
    flip_double: bool = _f(False, "add a mirrored, label-swapped copy of every training pair (the reports' "
                                  "offline flip); aug.flip_p is the on-the-fly flip")
    mirrored: str = _f("keep", "training masks whose left/right labels are mirrored against the rest (the data "
                               "check's audit): keep them, fix them (their labels swapped as they are read, never "
                               "in the files) or drop them", choices=tuple(MIRRORED_POLICIES))


@dataclass
class AugConfig:
    rotate_limit: float = _f(25.0, "random rotation range in degrees (+-)", lo=0, hi=180)
    rotate_p: float = _f(0.5, "probability of rotating", lo=0, hi=1)
    scale_min: float = _f(1.0, "rescale-then-crop: smallest scale (1.25 = 512 -> 640)", lo=0.25, hi=4)
    scale_max: float = _f(1.25, "rescale-then-crop: largest scale", lo=0.25, hi=4)
    jitter_brightness: float = _f(0.125, "colour jitter: brightness factor range (+-)", lo=0, hi=1)
    jitter_contrast: float = _f(0.25, "colour jitter: contrast factor range (+-)", lo=0, hi=1)
    jitter_saturation: float = _f(0.25, "colour jitter: saturation factor range (+-)", lo=0, hi=1)
    jitter_hue: float = _f(0.05, "colour jitter: hue shift as a fraction of the circle (+-)", lo=0, hi=0.5)
    jitter_scale: float = _f(1.0, "multiplies all four jitter magnitudes (search them together)", lo=0, hi=4)
    jitter_p: float = _f(0.5, "probability of colour jitter", lo=0, hi=1)
    cutout_holes: int = _f(2, "cutout: up to this many holes (at least one)", lo=1, hi=32)
    cutout_min: float = _f(0.0625, "cutout: smallest hole side as a fraction of the image", lo=0, hi=1)
    cutout_max: float = _f(0.125, "cutout: largest hole side as a fraction of the image", lo=0, hi=1)
    cutout_p: float = _f(0.0, "probability of cutout", lo=0, hi=1)
    flip_p: float = _f(0.5, "probability of a horizontal flip", lo=0, hi=1)
    flip_swap: bool = _f(True, "swap left/right labels when flipping (False reproduces the bug)")


@dataclass
class LossConfig:
    ce: float = _f(1.0, "weight of cross-entropy", lo=0)
    focal: float = _f(0.0, "weight of softmax focal loss", lo=0)
    dice: float = _f(0.0, "weight of dice loss", lo=0)
    lovasz: float = _f(2.0, "weight of Lovasz-softmax loss", lo=0)
    total: float = _f(0.0, "rescale the four weights to sum to this (0 = use them as given)", lo=0)
    class_weights: str = _f("report", "class weights for CE and focal", choices=CLASS_WEIGHT_SCHEMES)
    class_weight_power: float = _f(0.5, "inverse_freq: weight = freq ** -power", lo=0, hi=2)
    focal_gamma: float = _f(2.0, "focal loss gamma", lo=0, hi=10)
    aux_weight: float = _f(0.4, "the auxiliary head's loss weight (0 = no auxiliary head)", lo=0)


@dataclass
class ModelConfig:
    arch: str = _f("unet", "segmentation_models_pytorch architecture", choices=ARCHS)
    encoder: str = _f("tu-mobilenetv3_small_100", "encoder: smp name or tu-<timm name>")
    decoder_width: int = _f(64, "decoder channels (Unet: widest stage)", lo=8, hi=1024)
    pretrained: str = _f("none", "encoder weights: none, imagenet (timm/hub) or a file path")
    max_params: int = _f(2_000_000, "refuse models with more trainable parameters (0 = no budget)", lo=0)


@dataclass
class OptimConfig:
    name: str = _f("adamw", "optimiser", choices=OPTIMIZERS)
    lr: float = _f(2e-3, "peak learning rate", lo=0, hi=10, lo_open=True)  # 0 would train nothing
    weight_decay: float = _f(1e-2, "weight decay", lo=0, hi=1)
    momentum: float = _f(0.9, "SGD momentum", lo=0, hi=1)
    schedule: str = _f("poly", "learning-rate schedule after warmup", choices=SCHEDULES)
    poly_power: float = _f(0.9, "poly schedule exponent", lo=0, hi=10)
    warmup_epochs: float = _f(1.0, "linear warmup length in epochs", lo=0)


@dataclass
class TrainConfig:
    epochs: int = _f(30, "length of the schedule in epochs", lo=1, hi=100_000)
    batch_size: int = _f(8, "images per step", lo=1, hi=4096)
    seed: int = _f(0, "seed for torch, numpy, python and the data order", lo=0)
    device: str = _f("auto", "auto, cpu, cuda or cuda:N")
    amp: bool = _f(True, "bf16 autocast on CUDA (ignored on CPU)")
    channels_last: bool = _f(True, "channels_last memory format on CUDA (ignored on CPU)")
    grad_clip: float = _f(0.0, "clip gradient norm (0 = off)", lo=0)
    tta_scales: tuple = _f((1.0,), "scales for test-time augmentation at validation")
    tta_flip: bool = _f(False, "add flipped (label-swapped) predictions at validation")


GROUPS = {
    "data": DataConfig,
    "aug": AugConfig,
    "loss": LossConfig,
    "model": ModelConfig,
    "optim": OptimConfig,
    "train": TrainConfig,
}


@dataclass
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    aug: AugConfig = field(default_factory=AugConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    @classmethod
    def from_dict(cls, d: dict | None = None) -> Config:
        """Build and validate a config; nested, dotted and ``a/b`` keys are all accepted."""
        cfg = cls()
        for key, value in flatten(d or {}).items():
            cfg.set(key, value)
        cfg.check()
        return cfg

    def to_dict(self) -> dict:
        """Nested plain dict (tuples become lists) that ``from_dict`` reads back."""
        out = dataclasses.asdict(self)
        for group in out.values():
            for k, v in group.items():
                if isinstance(v, tuple):
                    group[k] = list(v)
        return out

    def set(self, key: str, value: Any) -> None:
        """Set ``group.name`` to ``value`` after checking its type and range."""
        group, name, f = _field_of(key)
        setattr(getattr(self, group), name, _coerce(key, f, value))

    def check(self) -> None:
        """Checks that involve more than one key."""
        a, loss = self.aug, self.loss
        if a.scale_min > a.scale_max:
            raise ConfigError(f"aug.scale_min ({a.scale_min}) must not exceed aug.scale_max ({a.scale_max})")
        if a.cutout_min > a.cutout_max:
            raise ConfigError(f"aug.cutout_min ({a.cutout_min}) must not exceed aug.cutout_max ({a.cutout_max})")
        if loss.ce + loss.focal + loss.dice + loss.lovasz <= 0:
            raise ConfigError("loss: at least one of loss.ce, loss.focal, loss.dice, loss.lovasz must be > 0")
        if self.data.image_size % 32:
            raise ConfigError(f"data.image_size={self.data.image_size}: must be a multiple of 32 "
                              f"(the encoders' stride), e.g. {max(32, round(self.data.image_size / 32) * 32)}")
        if not self.train.tta_scales:
            raise ConfigError("train.tta_scales must hold at least one scale, e.g. [1.0]")


def flatten(d: dict, prefix: str = "") -> dict:
    """``{"aug": {"rotate_limit": 5}}`` -> ``{"aug.rotate_limit": 5}``; ``a/b`` keys become ``a.b``."""
    out: dict = {}
    for k, v in d.items():
        key = f"{prefix}{str(k).replace('/', '.')}"
        if isinstance(v, dict):
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


# flags that are another name for a config key, in every verb that has them: stated once, here
SHORTHANDS = {"max_epochs": "train.epochs", "epochs": "train.epochs", "seed": "train.seed",
              "max_params": "model.max_params", "data": "data.root", "train_on": "data.train_on"}


def with_flags(overrides: dict[str, Any] | None = None, **flags: Any) -> dict[str, Any]:
    """Dotted config keys set by the shorthand ``flags`` (``SHORTHANDS``; ``None``: not given) and by
    ``--set`` ``overrides``, as ``merge_flags`` resolves them; a data folder is made absolute, so a
    config means the same folder wherever it is read."""
    if flags.get("data") is not None:
        flags["data"] = data_folder(flags["data"])
    given = {SHORTHANDS[flag]: (f"--{flag.replace('_', '-')}", value) for flag, value in flags.items()}
    return merge_flags(given, flatten(overrides or {}))


def data_folder(data: str) -> str:
    """``data`` as an absolute path; a name no file system can hold gets a one-line error."""
    try:
        Path(data).expanduser().is_dir()
    except OSError as e:  # e.g. a name longer than the file system allows
        raise ConfigError(f"{data}: not a usable data folder ({e.strerror}); pass an existing folder with --data") \
            from None
    return str(Path(data).expanduser().resolve())


def merge_flags(flags: dict[str, tuple[str, Any]], overrides: dict[str, Any]) -> dict[str, Any]:
    """Dotted config keys set by command-line flags (``key -> (flag, value)``, ``None`` values are
    flags not given) and by ``--set`` (``overrides``, which win); a flag that is a shorthand for a
    key and a ``--set`` of that key with another value are refused, not silently resolved."""
    out = {}
    for key, (flag, value) in flags.items():
        if value is None:
            continue
        if key in overrides and overrides[key] != value:
            raise ConfigError(f"{flag} {value} and --set {key}={overrides[key]} set the same value differently; "
                              f"give one of them")
        out[key] = value
    return {**out, **overrides}


_KIND_HINTS = {bool: "true or false", int: "a whole number", float: "a number, e.g. 1e-3",
               tuple: "numbers separated by commas, e.g. 0.75,1,1.25"}


def parse_value(key: str, text: str) -> Any:
    """Parse the text of a ``--set key=value`` override into the key's type."""
    _, _, f = _field_of(key)
    kind = type(_default(f))
    try:
        if kind is bool:
            low = text.strip().lower()
            if low not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError
            return low in ("true", "1", "yes")
        if kind is int:
            return int(text)
        if kind is float:
            return float(text)
        if kind is tuple:
            return tuple(float(x) for x in text.strip("[]() ").split(",") if x.strip())
    except ValueError:
        raise ConfigError(f"{key}={text!r}: expected {kind.__name__} ({_KIND_HINTS[kind]})") from None
    return text


def parse_overrides(pairs: list[str]) -> dict[str, Any]:
    """``--set KEY=VALUE`` pairs as dotted keys with values of each key's type."""
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise ConfigError(f"--set {pair!r}: expected KEY=VALUE, e.g. --set optim.lr=1e-3")
        out[key.strip()] = parse_value(key.strip(), value.strip())
    return out


def _field_of(key: str) -> tuple[str, str, dataclasses.Field]:
    group, _, name = key.replace("/", ".").partition(".")
    if group not in GROUPS:
        raise ConfigError(f"unknown config key '{key}': groups are {', '.join(GROUPS)}")
    fields = {f.name: f for f in dataclasses.fields(GROUPS[group])}
    if name not in fields:
        raise ConfigError(f"unknown config key '{key}': valid keys in '{group}' are {', '.join(fields)}")
    return group, name, fields[name]


def default_of(key: str) -> Any:
    """The default of config key ``key`` (e.g. ``model.max_params``)."""
    return _default(_field_of(key)[2])


def _default(f: dataclasses.Field) -> Any:
    return f.default if f.default is not dataclasses.MISSING else f.default_factory()


def _coerce(key: str, f: dataclasses.Field, value: Any) -> Any:
    default = _default(f)
    meta = f.metadata
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ConfigError(f"{key}={value!r}: expected true or false")
        return value
    if isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value):
            raise ConfigError(f"{key}={value!r}: expected a whole number")
        value = int(value)
    elif isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ConfigError(f"{key}={value!r}: expected a finite number")
        value = float(value)
    elif isinstance(default, tuple):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = (value,)
        if not isinstance(value, (list, tuple)) or not all(
                isinstance(x, (int, float)) and not isinstance(x, bool) and x > 0 for x in value):
            raise ConfigError(f"{key}={value!r}: expected a list of positive numbers, e.g. [0.75, 1.0, 1.25]")
        return tuple(float(x) for x in value)
    elif isinstance(default, str):
        if not isinstance(value, str):
            raise ConfigError(f"{key}={value!r}: expected a string")
        if meta["choices"] and value not in meta["choices"]:
            raise ConfigError(f"{key}={value!r}: valid values are {', '.join(meta['choices'])}")
        return value
    lo, hi, lo_open = meta["lo"], meta["hi"], meta.get("lo_open", False)
    if (lo is not None and (value <= lo if lo_open else value < lo)) or (hi is not None and value > hi):
        bounds = f"{'(' if lo_open else '['}{lo if lo is not None else '-inf'}, {hi if hi is not None else 'inf'}]"
        raise ConfigError(f"{key}={value!r}: out of range {bounds}")
    return value
