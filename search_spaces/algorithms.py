"""The searchers and schedulers a search can use, by name: what samples each trial's configuration
(an Optuna sampler behind the PRUNED coupling, so that every searcher keeps the same study, resume
and analysis) and what stops, or (PBT, PB2) exploits and explores, trials during training.
``search --searcher NAME --scheduler NAME`` picks them;
the experiment record keeps the names and the analysis report states them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["SCHEDULERS", "SEARCHERS", "Algorithm"]


@dataclass(frozen=True)
class Algorithm:
    name: str  # as a sentence names it: "stopped by ASHA at epoch 2"
    about: str  # what it is, for the analysis report
    settings: str  # it with its settings, for the start-up lines: a format string over the record's values
    build: Callable  # searchers: (seed, n_startup_trials) -> an Optuna sampler; schedulers: (record) -> a scheduler

    def describe(self, **values) -> str:
        return self.settings.format(**values)


def _tpe(seed: int, n_startup_trials: int):
    import optuna

    from search_spaces.unvisited import Unvisited

    # one density per parameter: Optuna 5's default (multivariate for one objective) needed more trial-epochs
    # than ASHA + random sampling on the MF-Hartmann-6 benchmarks, and got stuck on the poorly correlated ones
    # (bench/README.md, "The multi-fidelity Hartmann benchmarks")
    return Unvisited(optuna.samplers.TPESampler(seed=seed, n_startup_trials=n_startup_trials, multivariate=False), seed)


def _random(seed: int, n_startup_trials: int):
    import optuna

    from search_spaces.unvisited import Unvisited

    return Unvisited(optuna.samplers.RandomSampler(seed=seed), seed)


def _asha(record):
    from search_spaces.asha import RestoredASHA

    return RestoredASHA(time_attr="training_iteration", max_t=record.max_t, grace_period=record.grace_period,
                         reduction_factor=record.reduction_factor)


def _hyperband(record):
    from search_spaces.hyperband import LastRungEnds

    return LastRungEnds(time_attr="training_iteration", max_t=record.max_t, reduction_factor=record.reduction_factor)


def _fifo(record):
    from ray.tune.schedulers import FIFOScheduler

    return FIFOScheduler()


def _pbt(record):
    from search_spaces.population import pbt

    return pbt(record.search_space, record.perturbation_interval, record.seed, record.max_t)


def _pb2(record):
    from search_spaces.population import pb2

    return pb2(record.search_space, record.perturbation_interval, record.seed, record.max_t)


_NO_REPEATS = "no configuration tried twice on a finite space"
SEARCHERS = {
    "tpe": Algorithm("TPE", f"Optuna TPE sampler (univariate; {_NO_REPEATS})", "Optuna TPE, univariate (seed {seed})",
                     _tpe),
    "random": Algorithm("random sampling", f"random sampling (Optuna's RandomSampler; {_NO_REPEATS})",
                        "random sampling (seed {seed})", _random),
}
SCHEDULERS = {
    "asha": Algorithm("ASHA", "ASHA scheduler (asynchronous successive halving)",
                      "ASHA (max {max_t} epochs, grace {grace_period}, reduction {reduction_factor:g})", _asha),
    "hyperband": Algorithm("HyperBand",
                           "HyperBand scheduler (synchronous brackets; paused trials resume from checkpoints)",
                           "HyperBand (max {max_t} epochs, reduction {reduction_factor:g})", _hyperband),
    "fifo": Algorithm("FIFO", "no early stopping (FIFO: every trial trains all its epochs)",
                      "every trial in full ({max_t} epochs, no early stopping)", _fifo),
    "pbt": Algorithm("PBT", "Population Based Training of the augmentation settings (Ray's PBT, synchronous): the "
                     "worst quarter copies a trial of the best quarter and perturbs its aug.* settings",
                     "PBT (population {num_samples}, exploit and explore every {perturbation_interval} epochs of "
                     "{max_t})", _pbt),
    "pb2": Algorithm("PB2", "Population Based Bandits over the augmentation settings (Ray's PB2, synchronous): as "
                     "PBT, a GP bandit choosing the explored aug.* values",
                     "PB2 (population {num_samples}, exploit and explore every {perturbation_interval} epochs of "
                     "{max_t})", _pb2),
}
