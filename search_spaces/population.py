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

Ray keeps no scheduler state across ``Tuner.restore``: the resumed search gets the scheduler as it
was built, with every trial at time 0 and the first boundary next. A synchronous PBT then deadlocks
(every trial waits for a boundary it has already passed). ``PopulationBasedTraining`` and ``PB2``
here take each restored trial's last result back (its time, score and checkpoint) and, when no
trial can run towards the next boundary, move that boundary past the slowest trial. PB2's GP starts
from the results reported after the resume, and the donors drawn after it are not those of an
uninterrupted run.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from ray.tune.experiment import Trial
from ray.tune.schedulers import pbt as ray_pbt
from ray.tune.schedulers.pb2 import PB2 as RayPB2
from ray.tune.search.sample import Categorical, Domain, Float, Integer

from search_spaces.base import SearchSpace, nest

__all__ = ["EXPLORED_GROUP", "PB2", "POPULATION_SCHEDULERS", "KeepInRange", "PopulationBasedTraining", "explored",
           "pb2", "pbt"]

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


class _Resumable:
    """A synchronous PBT that carries on after ``Tuner.restore`` (see the module's docstring) and
    does not exploit at the last epoch, where no training would follow."""

    # reads PBT's private per-trial state and boundary, and pauses through TuneController._set_trial_status:
    # tests/test_ray_optuna_internals.py
    def __init__(self, *args, max_t: int, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._max_t = max_t

    def on_trial_add(self, tune_controller, trial: Trial) -> None:
        super().on_trial_add(tune_controller, trial)
        result = trial.last_result
        if self._time_attr not in result or self._metric not in result:
            return  # a new trial
        # restored, or retried after a failure: it is where its last result says
        state, time = self._trial_state[trial], result[self._time_attr]
        state.last_score = self._metric_op * result[self._metric]
        state.last_result = result
        state.last_train_time = time
        state.last_perturbation_time = time - time % self._perturbation_interval
        state.last_checkpoint = trial.checkpoint
        self._next_boundary()

    def choose_trial_to_run(self, tune_controller) -> Trial | None:
        live = list(tune_controller.get_live_trials())
        for t in live:
            # Ray starts every pending trial (a restored one, too): one at the boundary waits, paused
            if t.status == Trial.PENDING and self._trial_state[t].last_train_time >= self._next_perturbation_sync:
                tune_controller._set_trial_status(t, Trial.PAUSED)
        trial = super().choose_trial_to_run(tune_controller)
        if trial is None and live and not any(t.status == Trial.RUNNING for t in live):
            # nobody is on the way to the boundary, so nobody would ever reach it
            self._next_boundary()
            trial = super().choose_trial_to_run(tune_controller)
        return trial

    def on_trial_result(self, tune_controller, trial: Trial, result: dict) -> str:
        if result.get(self._time_attr, 0) >= self._max_t:
            return self.CONTINUE  # the trial's last epoch: it ends
        return super().on_trial_result(tune_controller, trial, result)

    def _next_boundary(self) -> None:
        """The next perturbation boundary: the first one past the slowest unfinished trial."""
        times = [s.last_train_time for t, s in self._trial_state.items() if not t.is_finished()]
        if times:
            step = self._perturbation_interval
            self._next_perturbation_sync = (min(times) // step + 1) * step


class PopulationBasedTraining(_Resumable, ray_pbt.PopulationBasedTraining):
    """Ray's PBT, resumable (``synch=True`` only)."""


class PB2(_Resumable, RayPB2):
    """Ray's PB2, resumable (``synch=True`` only)."""


def _mutations(space: SearchSpace) -> dict:
    # a choice as a list: Ray moves it to a neighbouring choice or redraws it, never off the list
    return nest({k: list(d.categories) if isinstance(d, Categorical) else d for k, d in explored(space).items()})


def pbt(space: SearchSpace, perturbation_interval: int, seed: int, epochs: int):
    """Ray's ``PopulationBasedTraining`` over ``space``'s augmentation keys, trials of ``epochs``."""
    random.seed(seed)  # Ray's PBT draws donors and perturbations from Python's random
    return PopulationBasedTraining(time_attr="training_iteration", perturbation_interval=perturbation_interval,
                                   hyperparam_mutations=_mutations(space), quantile_fraction=QUANTILE,
                                   resample_probability=RESAMPLE, custom_explore_fn=KeepInRange.of(space),
                                   synch=True, max_t=epochs)


def pb2(space: SearchSpace, perturbation_interval: int, seed: int, epochs: int):
    """Ray's ``PB2`` (a GP bandit picks the explored values within their bounds) over ``space``'s
    continuous augmentation keys; its choices are inherited at each exploit, not explored."""
    import numpy as np

    random.seed(seed)
    np.random.seed(seed)  # PB2's GP fit and its acquisition start from numpy's global generator
    bounds = {key: [low, high] for key, low, high, _ in KeepInRange.of(space).bounds}
    return PB2(time_attr="training_iteration", perturbation_interval=perturbation_interval,
               hyperparam_bounds=nest(bounds), quantile_fraction=QUANTILE, custom_explore_fn=KeepInRange.of(space),
               synch=True, max_t=epochs)
