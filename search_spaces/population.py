"""Population Based Augmentation: Ray Tune's PBT and PB2 over a space's augmentation keys.

A population of ``num_samples`` trials trains side by side; every ``perturbation_interval``
epochs the worst quarter takes over the weights, optimiser state and settings of a trial of the
best quarter (exploit: it restarts from that trial's checkpoint) and changes the augmentation
settings (explore). Only the ``aug.*`` keys are explored: they change what a trial trains on, not
what its weights are, so a new value takes effect at the next epoch. The other searched keys are
drawn once and inherited at each exploit.

Ray's PBT multiplies a continuous value by 0.8 or 1.2 and may step outside its range;
``KeepInRange`` clips every explored value to its key's range (an integer to its whole values),
and a choice is resampled among its choices (Ray shifts a list value to a neighbouring choice or
redraws it). PBT runs synchronously (``synch=True``): every trial of the population reaches a
perturbation boundary before any exploits, so with Python's ``random`` seeded the same search
makes the same exploits.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from ray.tune.search.sample import Categorical, Domain, Float, Integer

from search_spaces.base import SearchSpace, nest

__all__ = ["EXPLORED_GROUP", "POPULATION_SCHEDULERS", "KeepInRange", "explored", "pb2", "pbt"]

EXPLORED_GROUP = "aug"  # the config group a population explores during training
POPULATION_SCHEDULERS = ("pbt", "pb2")
QUANTILE = 0.25  # the share of the population that exploits, and the share it copies from
RESAMPLE = 0.25  # PBT: the probability of a fresh draw instead of a perturbation


def explored(space: SearchSpace) -> dict[str, Domain]:
    """The searched keys a population explores during training (dotted keys)."""
    return {k: d for k, d in space.params.items() if k.split(".")[0] == EXPLORED_GROUP}


@dataclass(frozen=True)
class KeepInRange:
    """PBT's ``custom_explore_fn``: every explored value back inside its key's range. Plain data, so
    that Ray can pickle it with the scheduler into the experiment's state."""

    bounds: tuple[tuple[str, float, float, bool], ...]  # (dotted key, low, high, integer)

    @classmethod
    def of(cls, space: SearchSpace) -> KeepInRange:
        rows = []
        for key, domain in explored(space).items():
            if isinstance(domain, Integer):
                rows.append((key, domain.lower, domain.upper - 1, True))  # randint's upper bound is exclusive
            elif isinstance(domain, Float):
                rows.append((key, domain.lower, domain.upper, False))
        return cls(tuple(rows))

    def __call__(self, config: dict) -> dict:
        for key, low, high, integer in self.bounds:
            group, name = key.split(".")
            value = min(max(config[group][name], low), high)
            config[group][name] = round(value) if integer else float(value)
        return config


def _mutations(space: SearchSpace) -> dict:
    # a choice as a list: Ray moves it to a neighbouring choice or redraws it, never off the list
    return nest({k: list(d.categories) if isinstance(d, Categorical) else d for k, d in explored(space).items()})


def pbt(space: SearchSpace, perturbation_interval: int, seed: int):
    """Ray's ``PopulationBasedTraining`` over ``space``'s augmentation keys."""
    from ray.tune.schedulers import PopulationBasedTraining

    random.seed(seed)  # Ray's PBT draws donors and perturbations from Python's random
    return PopulationBasedTraining(time_attr="training_iteration", perturbation_interval=perturbation_interval,
                                   hyperparam_mutations=_mutations(space), quantile_fraction=QUANTILE,
                                   resample_probability=RESAMPLE, custom_explore_fn=KeepInRange.of(space),
                                   synch=True)


def pb2(space: SearchSpace, perturbation_interval: int, seed: int):
    """Ray's ``PB2`` (a GP bandit picks the explored values within their bounds) over ``space``'s
    continuous augmentation keys; its choices are inherited at each exploit, not explored."""
    import numpy as np
    from ray.tune.schedulers.pb2 import PB2

    random.seed(seed)
    np.random.seed(seed)  # PB2's GP fit and its acquisition start from numpy's global generator
    bounds = {key: [low, high] for key, low, high, _ in KeepInRange.of(space).bounds}
    return PB2(time_attr="training_iteration", perturbation_interval=perturbation_interval,
               hyperparam_bounds=nest(bounds), quantile_fraction=QUANTILE, custom_explore_fn=KeepInRange.of(space),
               synch=True)
