"""No configuration twice on a finite space.

On a space whose every parameter takes finitely many values (the ``model`` space: architecture,
encoder, decoder width), univariate TPE picks, per parameter, the value with the best ratio of its
"good" to "bad" densities. Until the history changes, that is the same configuration again: 23% of
its trials re-ran a configuration already tried on the learning-curve table (bench/README.md). A
trial trains with the search's seed, so such a repeat is an exact copy of a result the study has.
``Unvisited`` wraps the sampler: a draw the study has already tried (running, ended, pruned,
refused or failed) is replaced by a configuration it has not tried, chosen at random, reproducibly
from the seed and the trial's number. On a space with a continuous parameter, or a grid too large
to list, it leaves every draw to the sampler it wraps.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.samplers import BaseSampler
from optuna.study import Study
from optuna.trial import FrozenTrial, TrialState

__all__ = ["MAX_GRID", "Unvisited", "finite_space", "tried_all"]

MAX_GRID = 10_000  # configurations listed at most; beyond it, repeats are rare (trials / grid) and listing costly


def _count(d: BaseDistribution) -> int | None:
    """How many values ``d`` takes; None where it is continuous."""
    if isinstance(d, CategoricalDistribution):
        return len(d.choices)
    if isinstance(d, IntDistribution):
        return (d.high - d.low) // d.step + 1
    if isinstance(d, FloatDistribution) and d.step is not None:
        return round((d.high - d.low) / d.step) + 1
    return None


def _index(d: BaseDistribution, value: Any) -> int:
    if isinstance(d, CategoricalDistribution):
        return int(d.to_internal_repr(value))
    return round((value - d.low) / d.step)  # compared as indices: a stepped float's value carries rounding


def _value(d: BaseDistribution, index: int) -> Any:
    if isinstance(d, CategoricalDistribution):
        return d.choices[index]
    return min(d.low + index * d.step, d.high)  # 0.0 + 3 * 0.1 overshoots 0.3, which Optuna would not take


def finite_space(study: Study, trial: FrozenTrial | None = None) -> dict[str, BaseDistribution]:
    """The parameters the study's trials other than ``trial`` share, where each takes finitely many
    values and their grid has at most ``MAX_GRID`` configurations; else empty."""
    space: dict[str, BaseDistribution] | None = None
    for other in study.get_trials(deepcopy=False):
        if other.distributions and (trial is None or other.number != trial.number):
            # every trial of a search has the same space; a conditional one keeps the common part
            space = dict(other.distributions) if space is None else {
                k: d for k, d in space.items() if other.distributions.get(k) == d}
    counts = [_count(d) for d in (space or {}).values()]
    if not counts or None in counts or math.prod(counts) > MAX_GRID:
        return {}
    return space


def _tried(study: Study, trial: FrozenTrial | None, space: dict[str, BaseDistribution]) -> set[tuple]:
    return {tuple(_index(d, other.params[n]) for n, d in space.items()) for other in study.get_trials(deepcopy=False)
            if (trial is None or other.number != trial.number) and other.state != TrialState.WAITING
            and all(n in other.params for n in space)}


def tried_all(study: Study) -> bool:
    """Whether the study has tried (or is trying) every configuration of its finite space."""
    space = finite_space(study)
    return bool(space) and len(_tried(study, None, space)) >= math.prod(_count(d) for d in space.values())


class Unvisited(BaseSampler):
    """``sampler``'s draws, except that one the study already tried becomes an untried configuration,
    drawn at random. A multivariate ``sampler`` (multivariate TPE) draws the parameters it models
    jointly, as it would unwrapped; the rest, or all of them for a univariate one, one at a time."""

    def __init__(self, sampler: BaseSampler, seed: int | None = None):
        self.sampler = sampler
        self.seed = seed

    def infer_relative_search_space(self, study: Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        return finite_space(study, trial) or self.sampler.infer_relative_search_space(study, trial)

    def sample_relative(self, study: Study, trial: FrozenTrial,
                        search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        if not search_space:
            return {}
        if not finite_space(study, trial):  # the sampler's own joint space: its draw, unguarded
            return self.sampler.sample_relative(study, trial, search_space)
        joint = {n: d for n, d in self.sampler.infer_relative_search_space(study, trial).items() if n in search_space}
        draw = self.sampler.sample_relative(study, trial, joint) if joint else {}
        draw = {n: draw[n] if n in draw else self.sampler.sample_independent(study, trial, n, d)
                for n, d in search_space.items()}
        tried = _tried(study, trial, search_space)
        if tuple(_index(d, draw[n]) for n, d in search_space.items()) not in tried:
            return draw
        untried = [combo for combo in itertools.product(*(range(_count(d)) for d in search_space.values()))
                   if combo not in tried]
        if not untried:
            return draw  # every configuration tried: the sampler's draw repeats one
        combo = untried[np.random.default_rng([self.seed or 0, trial.number]).integers(len(untried))]
        return {n: _value(d, i) for (n, d), i in zip(search_space.items(), combo)}

    def sample_independent(self, study: Study, trial: FrozenTrial, param_name: str,
                           param_distribution: BaseDistribution) -> Any:
        return self.sampler.sample_independent(study, trial, param_name, param_distribution)

    def before_trial(self, study: Study, trial: FrozenTrial) -> None:
        self.sampler.before_trial(study, trial)

    def after_trial(self, study: Study, trial: FrozenTrial, state: TrialState, values: Sequence[float] | None) -> None:
        self.sampler.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self.sampler.reseed_rng()
