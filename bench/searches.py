"""Benchmarks as Ray Tune searches, and one seeded search of a strategy on one of them, for
``bench/search_efficiency.py``: ``HartmannBench`` (the multi-fidelity Hartmann functions of
``bench/hartmann.py``, epochs as fidelity), ``TargetStopper`` (exact counts of trial-epochs to the
target, one trial at a time) and ``run_searches`` (many searches side by side on a private Ray
cluster, each its own driver process).
"""

from __future__ import annotations

import logging
import math
import os
import time
from pathlib import Path

from bench.curve_table import TableBench, load_curves
from bench.trials import report_epoch, resumed_epochs

__all__ = ["BENCHMARKS", "DEFAULT_BENCHMARK", "HARTMANN", "HARTMANN_DEFAULTS", "REFUSED_ABOVE", "STRATEGIES",
           "TARGET_REGRET", "TPE_VARIANTS", "CrossingBench", "HartmannBench", "RefusedAsFailure", "TargetStopper",
           "make_bench", "print_run", "run_searches", "search_env", "search_once"]

from ray.tune.stopper import Stopper

from search_spaces.driver.searcher import PrunedOptunaSearch

# the default's sampler (search_spaces.algorithms) with one of TPE's settings changed
TPE_VARIANTS = {
    "asha+tpe multivariate": {"multivariate": True},  # Optuna 5's default for one objective, the product's before
    "asha+tpe 12 candidates": {"n_ei_candidates": 12},  # half the draws ranked by l(x)/g(x): more exploration
    "asha+tpe 5 start-up": {"n_startup_trials": 5},  # TPE's model from the 6th trial on, for short budgets
}
# the lead of the peer comparison (bench/README.md): Optuna's bracket odds and multivariate TPE, guarded
MULTIVARIATE_BRACKETS = "asha+tpe multivariate 9-5-3 brackets"
STRATEGIES = ("asha+tpe pruned", "asha+tpe stock", "asha+random", "random full", *TPE_VARIANTS,
              "asha+tpe repeats", "asha+tpe refused-as-fail", "asha+tpe 3 brackets", "hyperband+tpe pruned",
              "hyperband+bohb", "asha+tpe 9-5-3 brackets", MULTIVARIATE_BRACKETS)


class RefusedAsFailure(PrunedOptunaSearch):
    """The product's coupling as it was before refusals were infeasible: a trial that ends without a
    report is told FAIL, which TPE leaves out of its model."""

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        refused = not error and (result or {}).get("training_iteration") is None
        super().on_trial_complete(trial_id, result, error or refused)



def _weighted_brackets():
    from ray.tune.schedulers import ASHAScheduler

    class WeightedBrackets(ASHAScheduler):
        """Ray's ASHA with a bracket per weight, each trial drawn into one with those odds (Optuna's
        HyperbandPruner allots 9 : 5 : 3 over brackets whose first rungs are at 1, 3 and 9 of 9 epochs)."""

        def __init__(self, weights: list[float], **kwargs) -> None:
            super().__init__(brackets=len(weights), **kwargs)
            self._odds = [w / sum(weights) for w in weights]

        def on_trial_add(self, tune_controller, trial) -> None:
            import numpy as np

            super().on_trial_add(tune_controller, trial)
            self._trial_info[trial.trial_id] = self._brackets[np.random.choice(len(self._odds), p=self._odds)]

    return WeightedBrackets


class HartmannBench:
    """A multi-fidelity Hartmann function (``bench/hartmann.py``) as a search: epoch e of ``max_t``
    is fidelity ``fidelities[e - 1]``, the share e / max_t of the package's 100 fidelities (never under
    its lowest, 3), so the last epoch is the true function; the metric is the negated value
    (maximised). A trial reaches the target when its last epoch's true
    regret is at most ``target_regret``: a low-fidelity report is biased and noisy, and counts for
    nothing but what the scheduler and the searcher make of it."""

    metric = "score"
    max_t = 9
    grace_period, reduction_factor = 1, 3  # rungs at epochs 1, 3, 9

    def __init__(self, name: str, target_regret: float | None = None):
        from bench.hartmann import MFHartmann, MixedHartmann

        kind, preset = name.split("-")
        self.name = name
        self.target_regret = TARGET_REGRET[kind] if target_regret is None else target_regret
        function, choices = {"mfh3": ("hartmann3", 0), "mfh6": ("hartmann6", 0), "mixed6": ("hartmann6", 3),
                             "budget6": ("hartmann6", 0)}[kind]
        base = MFHartmann(function, preset)
        self.function = MixedHartmann(base, choices=choices) if choices else base
        self.budgeted = kind == "budget6"

    def refused(self, x: tuple[float, ...]) -> bool:
        """``budget6``: like a parameter budget, half the cube is refused before any training: the points
        whose first three coordinates sum to more than 1.5 (the minimiser's sum to 0.83)."""
        return self.budgeted and sum(x[:3]) > REFUSED_ABOVE

    def flat_space(self) -> dict[str, list | None]:
        """Dimension -> its levels, or None for uniform on [0, 1]."""
        choices = getattr(self.function, "choices", 0)
        return {f"x{i}": self.function.grid() if i < choices else None for i in range(self.function.dims)}

    def param_space(self) -> dict:
        from ray import tune

        return {k: tune.uniform(0.0, 1.0) if v is None else tune.choice(v) for k, v in self.flat_space().items()}

    def epoch_result(self, config: dict, epoch: int) -> dict | None:
        """What a trial of ``config`` reports after ``epoch`` epochs (None: the configuration is refused)."""
        x = tuple(float(config[f"x{i}"]) for i in range(self.function.dims))
        if self.refused(x):
            return None
        report = {"score": -self.function.value(x, self.fidelities[epoch - 1]), "epoch": epoch, "point": repr(x)}
        if epoch == self.max_t:
            report["regret"] = self.function.regret(x)
        return report

    def trainable(self, checkpoints: bool = False):
        max_t, epoch_result = self.max_t, self.epoch_result

        def evaluate(config: dict) -> None:
            for epoch in range(resumed_epochs() + 1, max_t + 1):
                report = epoch_result(config, epoch)
                if report is None:
                    return  # as the product's trial refuses a configuration: no report, no error
                report_epoch(report, checkpoints)

        return evaluate

    @property
    def fidelities(self) -> list[int]:
        """The fidelity of each epoch 1..max_t. Epochs are a budget like the package's fidelity: epoch e
        is the share e / max_t of its range. (An exponential map would put the first rungs below the
        package's lowest fidelity, where every preset's ranking is noise: rank correlation 0.14 or less
        with the true function.)"""
        from bench.hartmann import LOWEST_FIDELITY

        return [max(LOWEST_FIDELITY, round(self.function.fidelities * epoch / self.max_t))
                for epoch in range(1, self.max_t + 1)]

    def reached(self, result: dict) -> bool:
        return result.get("regret", math.inf) <= self.target_regret

    def score(self, result: dict) -> float:
        return -result["regret"] if "regret" in result else -math.inf


class CrossingBench(HartmannBench):
    """The crossing learning curves of ``bench/crossing.py`` as a search: the metric is the reported
    (noisy) score; a trial reaches the target when some epoch's noiseless score is within
    ``target_regret`` of the best any configuration reaches (a trial scores its best epoch, as the
    product ranks trials)."""

    def __init__(self, name: str = "crossing6", target_regret: float | None = None):
        from bench.crossing import CrossingCurves

        self.name, self.function, self.budgeted = name, CrossingCurves(), False
        self.target_regret = TARGET_REGRET["crossing6"] if target_regret is None else target_regret

    def epoch_result(self, config: dict, epoch: int) -> dict:
        from bench.crossing import OPTIMUM

        x = tuple(float(config[f"x{i}"]) for i in range(self.function.dims))
        return {"score": self.function.value(x, epoch), "epoch": epoch, "point": repr(x),
                "regret": OPTIMUM - self.function.true_value(x, epoch)}


def make_bench(name: str, target: float | None = None):
    """The benchmark ``name`` (a Hartmann preset or ``crossing6``) as a search."""
    return CrossingBench(name, target) if name == "crossing6" else HartmannBench(name, target)


# the true regret a search must reach: about 1 in 100 uniformly drawn points is as good (measured on
# 20,000 draws: mfh6 1.0 %, mfh3 1.1 %, mixed6 1.4 %, crossing6 1.05 %), so random full training needs
# about 100 trials
TARGET_REGRET = {"mfh6": 1.5, "mfh3": 0.3, "mixed6": 1.5, "budget6": 1.5, "crossing6": 0.035}
REFUSED_ABOVE = 1.5  # budget6: the sum of x0..x2 above which a configuration is refused (half the cube)
HARTMANN = [f"{kind}-{preset}" for kind in ("mfh6", "mfh3", "mixed6", "budget6")
            for preset in ("good", "moderate", "bad", "terrible")]
BENCHMARKS = [*HARTMANN, "crossing6"]  # every function benchmark (the learning-curve table is "table")
DEFAULT_BENCHMARK = "mfh6-moderate"
HARTMANN_DEFAULTS = ["mfh6-good", "mfh6-moderate", "mfh6-bad", "mfh6-terrible", "mfh3-moderate", "mixed6-moderate",
                     "budget6-moderate", "crossing6"]


class TargetStopper(Stopper):
    """Counts trial-epochs in the order results arrive and ends the experiment once a trial has
    reached the benchmark's target (or, with ``to_budget``, goes on until the trial budget runs out)."""

    def __init__(self, bench, to_budget: bool = False, budget_epochs: int = 0):
        self.bench, self.to_budget, self.budget_epochs = bench, to_budget, budget_epochs
        self.epochs = 0
        self.trials: dict[str, int] = {}  # trial id -> epochs reported
        self.epochs_to_target: int | None = None
        self.best = -math.inf
        self.curve: list[tuple[int, float]] = []  # (trial-epochs so far, best score) at each improvement
        self.points: set[str] = set()
        self.repeats = 0  # trials of a configuration already tried in this search

    def __call__(self, trial_id: str, result: dict) -> bool:
        # one result is one epoch of one trial; Tune repeats a trial's last result when its function returns,
        # and a refused trial's only result has no training_iteration
        if result.get("training_iteration", 0) <= self.trials.get(trial_id, 0):
            return False
        if trial_id not in self.trials:
            self.repeats += result["point"] in self.points
            self.points.add(result["point"])
        self.trials[trial_id] = result["training_iteration"]
        self.epochs += 1
        score = self.bench.score(result)
        if score > self.best:
            self.best = score
            self.curve.append((self.epochs, score))
        if self.epochs_to_target is None and self.bench.reached(result):
            self.epochs_to_target = self.epochs
        return False

    def record(self) -> dict:
        """What one search's line of the comparison holds of the count."""
        return {"epochs_to_target": self.epochs_to_target, "epochs": self.epochs, "trials": len(self.trials),
                "repeats": self.repeats, "best": self.best, "curve": self.curve}

    def stop_all(self) -> bool:
        if self.budget_epochs and self.epochs >= self.budget_epochs:
            return True
        return self.epochs_to_target is not None and not self.to_budget


def search_once(strategy: str, seed: int, bench, num_samples: int, n_startup: int, storage: Path,
                budget_epochs: int = 0, resources: dict | None = None) -> dict:
    """One search of ``strategy`` with ``seed``, trials one at a time: trial-epochs to the target, or
    (with ``budget_epochs``) on until that many trial-epochs, for the best score reached with them.
    ``resources``: this driver's own Ray resource, so that its trials run one at a time."""
    import numpy as np
    import optuna
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler
    from ray.tune.search import BasicVariantGenerator
    from ray.tune.search.optuna import OptunaSearch

    from search_spaces.algorithms import SEARCHERS
    from search_spaces.driver import make_searcher

    name = f"{bench.name}-{strategy.replace(' ', '-').replace('+', '-')}-seed{seed}"
    if strategy in ("asha+tpe pruned", "asha+tpe 3 brackets", "asha+tpe 9-5-3 brackets", "hyperband+tpe pruned"):
        search_alg = make_searcher(storage / f"{name}.journal", name, seed, [], max_t=bench.max_t,
                                   n_startup_trials=n_startup, metric=bench.metric)
    elif strategy in ("asha+tpe repeats", "asha+tpe refused-as-fail", MULTIVARIATE_BRACKETS,
                      *TPE_VARIANTS):
        from search_spaces.driver.searcher import journal_storage
        from search_spaces.unvisited import Unvisited

        if strategy in TPE_VARIANTS or strategy == MULTIVARIATE_BRACKETS:
            variant = TPE_VARIANTS.get(strategy, {"multivariate": True})
            settings = {"seed": seed, "n_startup_trials": n_startup, "multivariate": False, **variant}
            sampler = optuna.samplers.TPESampler(**settings)
            # the variant rows ("asha+tpe multivariate" among them) as measured before Unvisited took
            # a multivariate sampler's joint draw; the bracket row with the product's guard
            guarded = not settings["multivariate"] or strategy == MULTIVARIATE_BRACKETS
            cls, sampler = PrunedOptunaSearch, Unvisited(sampler, seed) if guarded else sampler
        elif strategy == "asha+tpe repeats":
            # the product's TPE without search_spaces.unvisited: on a finite space it may draw a tried configuration
            cls, sampler = PrunedOptunaSearch, SEARCHERS["tpe"].build(seed, n_startup).sampler
        else:
            cls, sampler = RefusedAsFailure, SEARCHERS["tpe"].build(seed, n_startup)
        search_alg = cls(metric=bench.metric, mode="max", sampler=sampler,
                         storage=journal_storage(storage / f"{name}.journal"), study_name=name, points_to_evaluate=[],
                         max_t=bench.max_t)
    elif strategy == "asha+tpe stock":
        # the product's sampler behind Ray's own coupling: the two rows differ by the coupling alone
        search_alg = OptunaSearch(sampler=SEARCHERS["tpe"].build(seed, n_startup))
    elif strategy == "hyperband+bohb":
        from ray.tune.search.bohb import TuneBOHB

        search_alg = TuneBOHB(seed=seed)
    else:
        # its own limit: Tune ignores max_concurrent_trials for a BasicVariantGenerator passed in
        search_alg = BasicVariantGenerator(random_state=seed, max_concurrent=1)
    pauses = strategy in ("hyperband+bohb", "hyperband+tpe pruned")
    if strategy == "random full":
        scheduler = FIFOScheduler()
    elif strategy == "hyperband+tpe pruned":  # the product's --scheduler hyperband
        from search_spaces.hyperband import LastRungEnds

        scheduler = LastRungEnds(time_attr="training_iteration", max_t=bench.max_t,
                                 reduction_factor=bench.reduction_factor)
    elif strategy.endswith("9-5-3 brackets"):
        scheduler = _weighted_brackets()([9, 5, 3], time_attr="training_iteration", max_t=bench.max_t,
                                     grace_period=bench.grace_period, reduction_factor=bench.reduction_factor)
    elif pauses:
        from ray.tune.schedulers import HyperBandForBOHB

        scheduler = HyperBandForBOHB(time_attr="training_iteration", max_t=bench.max_t,
                                     reduction_factor=bench.reduction_factor)
    else:
        # "3 brackets": Ray's ASHA with HyperBand's brackets, first rungs at grace, grace * r and grace * r ** 2
        # (each trial drawn into one, most into the first), so that some slow starters are never stopped early
        scheduler = ASHAScheduler(time_attr="training_iteration", max_t=bench.max_t, grace_period=bench.grace_period,
                                  reduction_factor=bench.reduction_factor,
                                  brackets=3 if strategy == "asha+tpe 3 brackets" else 1)
    stopper = TargetStopper(bench, to_budget=bool(budget_epochs), budget_epochs=budget_epochs)
    np.random.seed(seed)  # Ray's ASHA draws each trial's bracket from numpy's global generator
    tuner = tune.Tuner(
        # one trial at a time: the driver's own resource. The searchers that sample from results also get
        # a concurrency limit of 1; HyperBand's brackets must not (a paused trial would hold the limiter's one
        # place, so each bracket would close on one trial), so BOHB fills a bracket from pending trials.
        tune.with_resources(bench.trainable(checkpoints=pauses), {"cpu": 1, **(resources or {})}),
        param_space=bench.param_space(),
        tune_config=tune.TuneConfig(metric=bench.metric, mode="max", search_alg=search_alg, scheduler=scheduler,
                                    num_samples=num_samples, max_concurrent_trials=None if pauses else 1,
                                    reuse_actors=True),
        run_config=tune.RunConfig(name=name, storage_path=str(storage), stop=stopper, verbose=0),
    )
    start = time.time()
    results = tuner.fit()
    refused = sum(bench.metric not in r.metrics for r in results)  # ended without a report
    return {"strategy": strategy, "seed": seed, **stopper.record(), "refused": refused, "seconds": time.time() - start}



_WORKER: dict = {}


def _driver_init(address: str, curves_path: str, slots) -> None:
    """A search driver process: connect to the benchmark's Ray cluster, take a slot (its own resource of
    the cluster) and load the table once."""
    import optuna
    import ray

    with slots.get_lock():
        _WORKER["slot"], slots.value = slots.value, slots.value + 1

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    ray.init(address=address, log_to_driver=False, configure_logging=False)
    # without per-trial result files Tune warns that it cannot read them back; the stopper holds the counts
    logging.getLogger("ray.tune").setLevel(logging.ERROR)
    _WORKER["curves"] = load_curves(Path(curves_path)) if curves_path and Path(curves_path).is_file() else {}


def _driver_search(job: tuple) -> dict:
    strategy, seed, bench_name, target, budget, budget_epochs, n_startup, storage = job
    bench = TableBench(_WORKER["curves"], target) if bench_name == "table" else make_bench(bench_name, target)
    return {"benchmark": bench_name,
            **search_once(strategy, seed, bench, budget, n_startup, Path(storage), budget_epochs,
                          {_slot(_WORKER["slot"]): 1})}


def _slot(index: int) -> str:
    return f"search-driver-{index}"


def run_searches(jobs: list[tuple], drivers: int, curves_path: str, verbose: bool) -> list[dict]:
    """Every job on a new Ray cluster of our own, ``drivers`` searches side by side."""
    import multiprocessing as mp

    import ray

    # a new cluster of our own ("local": never one already running on this machine). Each search is its
    # own driver process running one trial at a time, so its count of trial-epochs is exact and does not
    # depend on timing; several drivers side by side hide Tune's start-up latency.
    ctx = ray.init(address="local", num_cpus=drivers, resources={_slot(i): 1 for i in range(drivers)},
                   include_dashboard=False, log_to_driver=False, configure_logging=False)
    runs: list[dict] = []
    spawn = mp.get_context("spawn")
    try:
        with spawn.Pool(drivers, _driver_init, (ctx.address_info["gcs_address"], curves_path,
                                                spawn.Value("i", 0))) as pool:
            for run in pool.imap_unordered(_driver_search, jobs):
                runs.append(run)
                if verbose:
                    print_run(run)
            pool.close()  # let the drivers disconnect from Ray and exit, rather than be terminated
            pool.join()
    finally:
        ray.shutdown()
    return runs


def print_run(run: dict) -> None:
    """One search's line of ``--verbose``."""
    print(f"  {run['benchmark']:<14} {run['strategy']:<20} seed {run['seed']:2d}: {run['epochs_to_target']} "
          f"trial-epochs to target, {run['trials']} trials, best {run['best']:.3f}, {run['seconds']:.1f} s", flush=True)


def search_env() -> None:
    # inherited by the search drivers: a private local cluster without dashboard or token
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")  # no per-trial result files: less overhead
    os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "1000000")  # nothing to resume
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ.setdefault("TUNE_DISABLE_STRICT_METRIC_CHECKING", "1")  # a refused trial ends without a report
