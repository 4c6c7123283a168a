"""What a search space is: Tune domains over config keys, ablation levels, and fixed settings."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from ray import tune
from ray.tune.search.sample import Categorical, Domain, Float, Integer

from trainable.config import Config, ConfigError, flatten

__all__ = ["SIGNIFICANT_DIGITS", "SearchSpace", "nest", "rounded"]

# a sampled float is trained, shown and pasted at this many significant digits: a search of a few dozen
# noisy trials cannot tell 0.012345 from 0.01235, and a printed --set line then reproduces the trial
SIGNIFICANT_DIGITS = 4


def rounded(value: Any) -> Any:
    """``value`` with every float (in nested dicts and lists too) at ``SIGNIFICANT_DIGITS`` significant digits."""
    if isinstance(value, dict):
        return {k: rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [rounded(v) for v in value]
    if isinstance(value, float) and math.isfinite(value):
        return float(f"{value:.{SIGNIFICANT_DIGITS}g}")
    return value


def nest(flat: dict[str, Any]) -> dict:
    """``{"aug.rotate_limit": 5}`` -> ``{"aug": {"rotate_limit": 5}}``."""
    out: dict = {}
    for key, value in flat.items():
        group, _, name = key.partition(".")
        out.setdefault(group, {})[name] = value
    return out


@dataclass(frozen=True)
class SearchSpace:
    """A named search space over the trainable's config keys (dotted, e.g. ``aug.rotate_limit``).

    ``params`` are sampled by Optuna; ``levels`` are the values an ablation runs one factor at a
    time from the baseline (a ``choice`` not named there takes its choices as its levels);
    ``constants`` are set in every trial (e.g. a fixed loss total).
    """

    name: str
    description: str
    params: dict[str, Domain]
    levels: dict[str, list] = field(default_factory=dict)
    constants: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        chosen = {k: list(d.categories) for k, d in self.params.items()
                  if isinstance(d, Categorical) and k not in self.levels}
        object.__setattr__(self, "levels", {**self.levels, **chosen})
        # every bound and level must be a valid value of its key
        where = f"search space {self.name!r}"
        for key, domain in self.params.items():
            values = _domain_values(domain)
            for value in values:
                _check_value(where, key, value)
            if not isinstance(domain, Categorical) and values[0] > values[1]:
                raise ConfigError(f"{where}: {key} has an empty range {values[0]}..{values[1]}; "
                                  f"the lower bound must be below the upper one")
            if isinstance(domain, Categorical) and not values:
                raise ConfigError(f"{where}: {key} has no choices")
        for key, levels in self.levels.items():
            for value in levels:
                _check_value(f"{where}, ablation levels", key, value)

    def base_config(self, overrides: dict | None = None, start: dict | None = None) -> Config:
        """The baseline: config defaults (or the config ``start``, e.g. another search's best trial's),
        then this space's constants, then the user's overrides."""
        return Config.from_dict({**flatten(start or {}), **self.constants, **flatten(overrides or {})})

    def baseline_point(self, base: Config) -> dict:
        """The searched keys at their baseline values, as Tune's flattened ``group/name`` keys."""
        flat = flatten(base.to_dict())
        return {key.replace(".", "/"): flat[key] for key in self.params}

    def param_space(self, base: Config) -> dict:
        """Nested param space for ``tune.Tuner``: the base config with the searched keys as domains."""
        flat = flatten(base.to_dict())
        flat.update(self.params)
        return nest(flat)

    def ablation_points(self, base: Config, seeds: int = 1) -> list[dict]:
        """Full configs: the baseline, then each factor at each of its other levels, x ``seeds``."""
        flat = flatten(base.to_dict())
        variants = [dict(flat)]
        for key, levels in self.levels.items():
            for level in levels:
                if level != flat[key]:
                    variants.append({**flat, key: level})
        return [nest({**v, "train.seed": base.train.seed + s}) for s in range(seeds) for v in variants]


def _check_value(where: str, key: str, value: Any) -> None:
    try:
        Config().set(key, value)
    except ConfigError as e:
        raise ConfigError(f"{where}: {e}") from None


def _domain_values(domain: Domain) -> list:
    if isinstance(domain, Categorical):
        return list(domain.categories)
    if isinstance(domain, Integer):
        return [domain.lower, domain.upper - 1]  # randint's upper bound is exclusive
    if isinstance(domain, Float):
        return [domain.lower, domain.upper]
    raise ConfigError(f"unsupported search domain {domain!r}: use tune.uniform, loguniform, randint or choice")


# re-exported so space modules read as plain declarations
uniform, loguniform, randint, choice = tune.uniform, tune.loguniform, tune.randint, tune.choice
