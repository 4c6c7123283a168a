"""The tools a researcher would run instead of this product, on the same benchmarks and counted the
same way, for ``bench/search_efficiency.py``.

Each peer is run as its own documentation shows, in one process, one trial at a time, with its
multi-fidelity settings set to the benchmark's (minimum resource ``grace_period``, maximum
``max_t``, reduction factor ``reduction_factor``: rungs at epochs 1, 3 and 9) and everything else
left at its default:

- ``optuna tpe+hyperband`` / ``optuna tpe+sha``: ``optuna.create_study`` with ``TPESampler(seed)``
  and ``HyperbandPruner`` / ``SuccessiveHalvingPruner``; each trial reports every epoch and stops
  when the pruner says so.
- ``syne-tune asha+bore`` / ``syne-tune bohb`` / ``syne-tune asha+cqr``: Syne Tune's ``ASHABORE``,
  ``BOHB`` (ASHA with BOHB's kernel density searcher) and ``ASHACQR`` driven as its ``Tuner``
  drives them (``suggest``, ``on_trial_add``, ``on_trial_result`` per epoch, ``on_trial_remove`` on
  STOP). The release ships no MOBSTER or Hyper-Tune (``bench/README.md``).
- ``smac hyperband``: SMAC3's ``MultiFidelityFacade`` (Hyperband with its random forest) through
  ``ask``/``tell``.
- ``dehb``: ``DEHB`` through ``ask``/``tell``.

SMAC and DEHB evaluate a configuration at a budget from scratch and never continue a trial, as
they are used: an evaluation at budget b costs b trial-epochs, and a promotion trains again from
epoch 1. Every epoch a peer trains goes through the same ``TargetStopper`` as the Ray searches', so
trial-epochs to the target, the best score curve and the repeats are counted alike.
"""

from __future__ import annotations

import logging
import math
import tempfile
from collections.abc import Callable
from pathlib import Path

from bench.searches import TargetStopper, print_run

__all__ = ["PEERS", "available_peers", "run_peer", "run_peers"]


def _optuna(pruner: str):
    def search(bench, seed: int, counter: TargetStopper, trials: int, folder: Path) -> None:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        settings = {"min_resource": bench.grace_period, "reduction_factor": bench.reduction_factor}
        chosen = (optuna.pruners.HyperbandPruner(max_resource=bench.max_t, **settings) if pruner == "hyperband"
                  else optuna.pruners.SuccessiveHalvingPruner(**settings))
        # named: HyperbandPruner draws a trial's bracket from a hash of the study's name and the trial's number
        study = optuna.create_study(study_name=f"{bench.name}-seed{seed}", direction="maximize",
                                    sampler=optuna.samplers.TPESampler(seed=seed), pruner=chosen)

        def objective(trial: optuna.Trial) -> float:
            config = {name: trial.suggest_float(name, 0.0, 1.0) if values is None
                      else trial.suggest_categorical(name, values) for name, values in bench.flat_space().items()}
            for epoch in range(1, bench.max_t + 1):
                value = _train_epoch(bench, config, epoch, trial.number, counter)
                if counter.stop_all():
                    study.stop()
                    return value
                trial.report(value, epoch)
                if trial.should_prune():
                    raise optuna.TrialPruned()
            return value

        study.optimize(objective, n_trials=trials)

    return search


def _syne_tune(method: str):
    def search(bench, seed: int, counter: TargetStopper, trials: int, folder: Path) -> None:
        import datetime

        from syne_tune.backend.trial_status import Trial
        from syne_tune.config_space import choice, uniform
        from syne_tune.optimizer import baselines
        from syne_tune.optimizer.scheduler import SchedulerDecision

        space = {name: uniform(0.0, 1.0) if values is None else choice(values)
                 for name, values in bench.flat_space().items()}
        scheduler = getattr(baselines, method)(
            space, metric=bench.metric, time_attr="epoch", max_t=bench.max_t, do_minimize=False, random_seed=seed,
            grace_period=bench.grace_period, reduction_factor=bench.reduction_factor)
        for trial_id in range(trials):
            suggestion = scheduler.suggest()
            if suggestion is None:
                return
            trial = Trial(trial_id=trial_id, config=suggestion.config, creation_time=datetime.datetime.now())
            scheduler.on_trial_add(trial)
            for epoch in range(1, bench.max_t + 1):
                value = _train_epoch(bench, suggestion.config, epoch, trial_id, counter)
                if counter.stop_all():
                    return
                if scheduler.on_trial_result(trial, {bench.metric: value, "epoch": epoch}) == SchedulerDecision.STOP:
                    scheduler.on_trial_remove(trial)
                    break

    return search


def _configspace(bench, seed: int):
    from ConfigSpace import Categorical, ConfigurationSpace, Float

    space = ConfigurationSpace(seed=seed)
    space.add([Float(name, (0.0, 1.0)) if values is None else Categorical(name, values)
               for name, values in bench.flat_space().items()])
    return space


def _smac(bench, seed: int, counter: TargetStopper, trials: int, folder: Path) -> None:
    from smac import MultiFidelityFacade, Scenario
    from smac.main.exceptions import ConfigurationSpaceExhaustedException
    from smac.runhistory.dataclasses import TrialValue

    def never_called(config, seed: int = 0, budget: float = 0.0) -> float:
        raise AssertionError("ask/tell: SMAC does not call the target function")

    scenario = Scenario(_configspace(bench, seed), deterministic=True, n_trials=trials, min_budget=bench.grace_period,
                        max_budget=bench.max_t, seed=seed, output_directory=folder / "smac")
    smac = MultiFidelityFacade(scenario, never_called, overwrite=True, logging_level=logging.ERROR,
                               intensifier=MultiFidelityFacade.get_intensifier(scenario, eta=bench.reduction_factor))
    for key in range(trials):
        try:
            info = smac.ask()
        except ConfigurationSpaceExhaustedException:  # SMAC never repeats one: on a small grid its search ends
            return
        value = _train_from_scratch(bench, dict(info.config), round(info.budget), key, counter)
        if counter.stop_all():
            return
        smac.tell(info, TrialValue(cost=-value))


def _dehb(bench, seed: int, counter: TargetStopper, trials: int, folder: Path) -> None:
    from dehb import DEHB
    from loguru import logger

    logger.remove()  # DEHB logs every bracket at INFO through loguru
    space = _configspace(bench, seed)
    dehb = DEHB(cs=space, dimensions=len(space), min_fidelity=bench.grace_period, max_fidelity=bench.max_t,
                eta=bench.reduction_factor, n_workers=1, seed=seed, output_path=str(folder / "dehb"), save_freq=None)
    for key in range(trials):
        job = dehb.ask()
        config = dict(job["config"])  # a ConfigSpace configuration already
        budget = round(job["fidelity"])
        value = _train_from_scratch(bench, config, budget, key, counter)
        if counter.stop_all():
            return
        dehb.tell(job, {"fitness": -value, "cost": float(budget)})


def _train_epoch(bench, config: dict, epoch: int, trial_key, counter: TargetStopper) -> float:
    """One epoch of one trial: counted, and its reported value returned."""
    result = bench.epoch_result(config, epoch)
    counter(trial_key, {**result, "training_iteration": epoch})
    return result[bench.metric]


def _train_from_scratch(bench, config: dict, budget: int, key: int, counter: TargetStopper) -> float:
    """A new trial trained for ``budget`` epochs (as SMAC and DEHB evaluate a budget); its last value."""
    value = math.nan
    for epoch in range(1, budget + 1):
        value = _train_epoch(bench, config, epoch, f"evaluation-{key}", counter)
        if counter.stop_all():
            break
    return value


# name -> (the search, the packages it needs)
PEERS: dict[str, tuple[Callable, tuple[str, ...]]] = {
    "optuna tpe+hyperband": (_optuna("hyperband"), ("optuna",)),
    "optuna tpe+sha": (_optuna("sha"), ("optuna",)),
    "syne-tune asha+bore": (_syne_tune("ASHABORE"), ("syne_tune", "xgboost")),
    "syne-tune bohb": (_syne_tune("BOHB"), ("syne_tune", "statsmodels")),
    "syne-tune asha+cqr": (_syne_tune("ASHACQR"), ("syne_tune",)),
    "smac hyperband": (_smac, ("smac", "ConfigSpace")),
    "dehb": (_dehb, ("dehb", "ConfigSpace", "loguru")),
}


def available_peers() -> dict[str, str]:
    """Peer -> why it cannot run here ("" when it can)."""
    from importlib.util import find_spec

    return {name: ", ".join(f"{m} is not installed" for m in modules if find_spec(m) is None)
            for name, (_, modules) in PEERS.items()}


def run_peer(peer: str, seed: int, bench, budget_epochs: int, trials: int) -> dict:
    """One seeded search of ``peer`` on ``bench``, counted by a ``TargetStopper`` as the Ray searches
    are, the same record as ``searches.search_once``: with ``budget_epochs``, on until that many
    trial-epochs (for the best score reached with them); without, until the target or ``trials``."""
    import random
    import time

    import numpy as np

    random.seed(seed)  # some peers draw from the global generators (Syne Tune's BOHB, its bracket draw)
    np.random.seed(seed)
    counter = TargetStopper(bench, to_budget=bool(budget_epochs), budget_epochs=budget_epochs)
    start = time.time()
    with tempfile.TemporaryDirectory(prefix="peer-") as folder:
        PEERS[peer][0](bench, seed, counter, trials, Path(folder))
    return {"strategy": peer, "seed": seed, **counter.record(), "refused": 0, "seconds": time.time() - start}


def _peer_job(job: tuple) -> dict:
    import warnings

    from bench.curve_table import TableBench, load_curves
    from bench.searches import make_bench

    warnings.simplefilter("ignore")  # the peers' own deprecation and future warnings, once per evaluation
    logging.getLogger("syne_tune").setLevel(logging.ERROR)  # a warning per search about its own defaults
    peer, seed, name, target, budget_epochs, trials, curves = job
    bench = TableBench(load_curves(Path(curves)), target) if name == "table" else make_bench(name, target)
    return {"benchmark": name, **run_peer(peer, seed, bench, budget_epochs, trials)}


def run_peers(jobs: list[tuple], processes: int, verbose: bool) -> list[dict]:
    """Every (peer, seed, benchmark, target, budget_epochs, trials, curves path) job, ``processes`` side by side."""
    import multiprocessing as mp

    runs: list[dict] = []
    if not jobs:
        return runs
    with mp.get_context("spawn").Pool(processes) as pool:
        for run in pool.imap_unordered(_peer_job, jobs):
            runs.append(run)
            if verbose:
                print_run(run)
    return runs
