"""Search efficiency: trial-epochs each strategy needs to reach what random search with full training finds.

A tabular benchmark. ``--build-table`` trains a grid of configurations once on the built-in
synthetic set (64 px, otherwise the CPU defaults of ``launch.py``) with the project's plain
training loop and stores every learning curve in ``bench/data/curves.parquet``. The default mode
replays those curves through Ray Tune with a trainable that looks its configuration's curve up
and reports one epoch per result, so a whole search takes seconds and many seeds fit in minutes:

    python bench/search_efficiency.py --build-table [--jobs 2]   # once; about an hour on 2 busy cores
    python bench/search_efficiency.py [--seeds 20]                # the replay; a few minutes

Strategies, each searching ``tune.choice`` over the grid levels (so every sample is in the table):

- ``asha+tpe pruned``: ASHA + Optuna TPE, stopped trials told to Optuna as PRUNED
  (``search_spaces.driver.make_searcher``, the project's coupling);
- ``asha+tpe stock``: ASHA + Ray's ``OptunaSearch``, which tells them COMPLETE with their early score;
- ``asha+random``: ASHA + random sampling;
- ``random full``: random sampling, every trial trained to the last epoch;
- ``asha+tpe multivariate``: the PRUNED coupling with Optuna 5's default (multivariate) TPE;
- ``hyperband+bohb``: Ray's ``TuneBOHB`` with ``HyperBandForBOHB`` (needs ``hpbandster`` and ``ConfigSpace``).

Target: the median, over random searches of ``--reference-trials`` fully trained trials, of the
best val mIoU found (a trial scores its best epoch, as the project reports trials), computed
exactly from the table. A search's cost is the number of trial-epochs reported until some trial
reports a val mIoU at or above the target; each search runs one trial at a time, so the count is
exact and does not depend on timing. Every search is seeded (TPE sampler, random generator).
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import math
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script from anywhere

from bench.trials import report_epoch, resumed_epochs  # noqa: E402  (after the path it needs)

DATA_DIR = ROOT / "bench" / "data"
CURVES = DATA_DIR / "curves.parquet"
PARTIAL = DATA_DIR / "curves.partial.jsonl"

# The grid, every combination trained once: the learning rate (log steps from clearly too low up) dominates,
# the loss mix (cross-entropy alone or + Lovasz 1:2) interacts with it, rotation and colour jitter matter little.
GRID: dict[str, list] = {
    "optim.lr": [3e-4, 1e-3, 3e-3, 1e-2],
    "aug.rotate_limit": [0.0, 30.0],
    "aug.jitter_scale": [0.0, 2.0],
    "loss.lovasz": [0.0, 2.0],
}
EPOCHS = 8
# the CPU defaults of launch.py (64 px, 100 validation images, batch 8, ASHA grace 2 and reduction 3 over
# 8 epochs), but 200 training images instead of 400 so that the grid trains in well under an hour on 2 cores
FIXED = {"data.image_size": 64, "data.max_train": 200, "data.max_val": 100, "data.num_workers": 0,
         "train.epochs": EPOCHS, "train.batch_size": 8, "train.seed": 0}
GRACE_PERIOD, REDUCTION_FACTOR = 2, 3


# ---------------------------------------------------------------------------------------------
# table builder


def grid_configs() -> list[dict]:
    """Every combination of the grid levels, as flat dotted-key dicts."""
    keys = list(GRID)
    return [dict(zip(keys, values, strict=True)) for values in itertools.product(*GRID.values())]


def _train_curve(args: tuple[int, dict]) -> dict:
    """Train one configuration for ``EPOCHS`` epochs; its per-epoch val mIoU (NaN after divergence)."""
    index, point = args
    import torch

    torch.set_num_threads(1)  # one core per configuration: several run side by side
    from trainable.build import build_run, run_epoch
    from trainable.config import Config
    from trainable.loop import NonFiniteLossError

    start = time.time()
    run = build_run(Config.from_dict({**FIXED, **point}))
    curve: list[float] = []
    for epoch in range(EPOCHS):
        try:
            curve.append(float(run_epoch(run, epoch)["val_miou"]))
        except NonFiniteLossError:
            curve += [math.nan] * (EPOCHS - epoch)  # the real trial would error here
            break
    return {"config": index, **point, "curve": curve, "seconds": time.time() - start}


def build_table(jobs: int) -> None:
    """Train the grid (resuming from the partial file) and write ``curves.parquet``."""
    import multiprocessing as mp

    import pandas as pd

    from trainable.config import Config
    from trainable.sources import data_root

    data_root(Config.from_dict(FIXED).data)  # generate the synthetic set once, before the workers start
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    done = {}
    if PARTIAL.is_file():
        for line in PARTIAL.read_text().splitlines():
            row = json.loads(line)
            done[row["config"]] = row
    todo = [(i, p) for i, p in enumerate(grid_configs()) if i not in done]
    print(f"grid of {len(grid_configs())} configurations x {EPOCHS} epochs; {len(done)} done, {len(todo)} to train "
          f"with {jobs} processes", flush=True)
    start = time.time()
    with mp.get_context("spawn").Pool(jobs) as pool, PARTIAL.open("a") as out:
        for row in pool.imap_unordered(_train_curve, todo):
            done[row["config"]] = row
            out.write(json.dumps(row) + "\n")
            out.flush()
            print(f"[{len(done):3d}/{len(grid_configs())}] {time.time() - start:7.0f} s  config {row['config']:2d} "
                  f"final {row['curve'][-1]:6.2f}  ({row['seconds']:.0f} s)", flush=True)
    rows = [{"config": r["config"], **{k: r[k] for k in GRID}, "epoch": e + 1, "val_miou": v,
             "train_seconds": r["seconds"]}
            for r in sorted(done.values(), key=lambda r: r["config"]) for e, v in enumerate(r["curve"])]
    pd.DataFrame(rows).to_parquet(CURVES, index=False)
    PARTIAL.unlink()
    print(f"wrote {CURVES} ({len(rows)} rows) in {time.time() - start:.0f} s")


# ---------------------------------------------------------------------------------------------
# replay

try:
    from ray.tune.stopper import Stopper
except ImportError:  # the table build needs no Ray
    Stopper = object

STRATEGIES = ("asha+tpe pruned", "asha+tpe stock", "asha+random", "random full", "asha+tpe multivariate",
              "hyperband+bohb")


def load_curves(path: Path) -> dict[tuple, list[float]]:
    """The table as {grid point (values in ``GRID`` order): per-epoch val mIoU}."""
    import pandas as pd

    df = pd.read_parquet(path).sort_values(["config", "epoch"])
    return {tuple(float(v) for v in key): list(g["val_miou"])
            for key, g in df.groupby(list(GRID), sort=False)}


def peak(curve: list[float]) -> float:
    """A trial's score as the product reports it: its best val mIoU over the epochs it trained."""
    finite = [v for v in curve if math.isfinite(v)]
    return max(finite) if finite else -math.inf


def random_full_target(curves: dict[tuple, list[float]], n_trials: int) -> tuple[float, float]:
    """The median, over random searches of ``n_trials`` fully trained trials drawn uniformly from the
    grid (with replacement, as tune.choice samples), of the best score found; exact, from the table.
    Also the chance that one random trial reaches it."""
    scores = sorted(peak(c) for c in curves.values())
    n = len(scores)
    for i, v in enumerate(scores):
        # P(best of n_trials <= v) = F(v) ** n_trials, with F the grid's empirical distribution
        if ((i + 1) / n) ** n_trials >= 0.5 and (i + 1 == n or scores[i + 1] > v):
            return v, sum(s >= v for s in scores) / n
    return scores[-1], 1 / n


def random_full_exact(curves: dict[tuple, list[float]], target: float, budget: int) -> list[float]:
    """Quartiles (25, 50, 75 %) of the trial-epochs random search with full training needs to reach
    ``target``, exact from the table: trials are drawn uniformly with replacement, a miss costs its
    whole curve, a hit the epochs until it reaches the target; inf past ``budget`` trials."""
    import numpy as np

    misses, hits = [], []
    for curve in curves.values():
        reach = next((e for e, v in enumerate(curve, start=1) if v >= target), None)
        (hits if reach else misses).append(reach or sum(math.isfinite(v) for v in curve))
    n = len(curves)
    p_hit = len(hits) / n
    if not hits:
        return [math.inf] * 3
    # the cost of t - 1 misses then a hit: add the miss costs one trial at a time (a distribution over sums)
    out, miss_sums = [], {0: 1.0}
    dist: dict[float, float] = {}
    for _ in range(budget):
        for cost, prob in miss_sums.items():
            for h in hits:
                dist[cost + h] = dist.get(cost + h, 0.0) + prob * p_hit / len(hits)
        nxt: dict[int, float] = {}
        for cost, prob in miss_sums.items():
            for m in misses:
                nxt[cost + m] = nxt.get(cost + m, 0.0) + prob / n
        miss_sums = nxt
    values = np.array(sorted(dist))
    cdf = np.cumsum([dist[v] for v in values])
    for q in (0.25, 0.5, 0.75):
        out.append(float(values[np.searchsorted(cdf, q)]) if cdf[-1] >= q else math.inf)
    return out


class TableBench:
    """The learning-curve table: ``tune.choice`` over the grid levels; a trial reaches the target when
    any epoch's val mIoU is at or above it (a trial scores its best epoch, as the project reports)."""

    name = "table"
    metric = "val_miou"
    max_t = EPOCHS
    grace_period, reduction_factor = GRACE_PERIOD, REDUCTION_FACTOR

    def __init__(self, curves: dict[tuple, list[float]], target: float):
        self.curves, self.target = curves, target

    def param_space(self) -> dict:
        from ray import tune

        from search_spaces.base import nest

        return nest({k: tune.choice(v) for k, v in GRID.items()})

    def trainable(self, checkpoints: bool = False):
        """A Tune function trainable that replays the stored curve of its configuration, one report per
        epoch (with ``checkpoints``, a checkpoint per epoch, so that a paused trial resumes where it was)."""
        curves = self.curves
        keys = [k.split(".") for k in GRID]
        index = {point: i for i, point in enumerate(sorted(curves))}

        def replay(config: dict) -> None:
            point = tuple(float(config[g][k]) for g, k in keys)
            for epoch in range(resumed_epochs(), len(curves[point])):
                value = curves[point][epoch]
                if not math.isfinite(value):
                    raise FloatingPointError("training loss became nan")  # as the real trial fails
                report_epoch({"val_miou": value, "epoch": epoch + 1, "point": str(index[point])}, checkpoints)

        return replay

    def reached(self, result: dict) -> bool:
        return result["val_miou"] >= self.target

    def score(self, result: dict) -> float:
        return result["val_miou"]


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
        function, choices = {"mfh3": ("hartmann3", 0), "mfh6": ("hartmann6", 0), "mixed6": ("hartmann6", 3)}[kind]
        base = MFHartmann(function, preset)
        self.function = MixedHartmann(base, choices=choices) if choices else base

    def param_space(self) -> dict:
        from ray import tune

        choices = getattr(self.function, "choices", 0)
        grid = self.function.grid() if choices else []
        return {f"x{i}": tune.choice(grid) if i < choices else tune.uniform(0.0, 1.0)
                for i in range(self.function.dims)}

    def trainable(self, checkpoints: bool = False):
        function, max_t, dims, fidelities = self.function, self.max_t, self.function.dims, self.fidelities

        def evaluate(config: dict) -> None:
            x = tuple(float(config[f"x{i}"]) for i in range(dims))
            for epoch in range(resumed_epochs() + 1, max_t + 1):
                report = {"score": -function.value(x, fidelities[epoch - 1]), "epoch": epoch, "point": repr(x)}
                if epoch == max_t:
                    report["regret"] = function.regret(x)
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


# the true regret a search must reach: about 1 in 100 uniformly drawn points is as good (measured on
# 20,000 draws: mfh6 1.0 %, mfh3 1.1 %, mixed6 1.4 %), so random full training needs about 100 trials
TARGET_REGRET = {"mfh6": 1.5, "mfh3": 0.3, "mixed6": 1.5}
HARTMANN = [f"{kind}-{preset}" for kind in TARGET_REGRET for preset in ("good", "moderate", "bad", "terrible")]
DEFAULT_BENCHMARK = "mfh6-moderate"
HARTMANN_DEFAULTS = ["mfh6-good", "mfh6-moderate", "mfh6-bad", "mfh6-terrible", "mfh3-moderate", "mixed6-moderate"]


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
        # one result is one epoch of one trial; Tune repeats a trial's last result when its function returns
        if result["training_iteration"] <= self.trials.get(trial_id, 0):
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

    def stop_all(self) -> bool:
        if self.budget_epochs and self.epochs >= self.budget_epochs:
            return True
        return self.epochs_to_target is not None and not self.to_budget


def search_once(strategy: str, seed: int, bench, num_samples: int, n_startup: int, storage: Path,
                budget_epochs: int = 0, resources: dict | None = None) -> dict:
    """One search of ``strategy`` with ``seed``, trials one at a time: trial-epochs to the target, or
    (with ``budget_epochs``) on until that many trial-epochs, for the best score reached with them.
    ``resources``: this driver's own Ray resource, so that its trials run one at a time."""
    import optuna
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler
    from ray.tune.search import BasicVariantGenerator
    from ray.tune.search.optuna import OptunaSearch

    from search_spaces.algorithms import SEARCHERS
    from search_spaces.driver import make_searcher

    name = f"{bench.name}-{strategy.replace(' ', '-').replace('+', '-')}-seed{seed}"
    if strategy == "asha+tpe pruned":
        search_alg = make_searcher(storage / f"{name}.journal", name, seed, [], max_t=bench.max_t,
                                   n_startup_trials=n_startup, metric=bench.metric)
    elif strategy == "asha+tpe multivariate":
        # the PRUNED coupling with Optuna 5's default TPE (multivariate for one objective), the product's before
        from search_spaces.driver.searcher import PrunedOptunaSearch, journal_storage

        sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=n_startup)
        search_alg = PrunedOptunaSearch(metric=bench.metric, mode="max", sampler=sampler,
                                        storage=journal_storage(storage / f"{name}.journal"), study_name=name,
                                        points_to_evaluate=[], max_t=bench.max_t)
    elif strategy == "asha+tpe stock":
        # the product's sampler behind Ray's own coupling: the two rows differ by the coupling alone
        search_alg = OptunaSearch(sampler=SEARCHERS["tpe"].build(seed, n_startup))
    elif strategy == "hyperband+bohb":
        from ray.tune.search.bohb import TuneBOHB

        search_alg = TuneBOHB(seed=seed)
    else:
        # its own limit: Tune ignores max_concurrent_trials for a BasicVariantGenerator passed in
        search_alg = BasicVariantGenerator(random_state=seed, max_concurrent=1)
    pauses = strategy == "hyperband+bohb"
    if strategy == "random full":
        scheduler = FIFOScheduler()
    elif pauses:
        from ray.tune.schedulers import HyperBandForBOHB

        scheduler = HyperBandForBOHB(time_attr="training_iteration", max_t=bench.max_t,
                                     reduction_factor=bench.reduction_factor)
    else:
        scheduler = ASHAScheduler(time_attr="training_iteration", max_t=bench.max_t, grace_period=bench.grace_period,
                                  reduction_factor=bench.reduction_factor)
    stopper = TargetStopper(bench, to_budget=bool(budget_epochs), budget_epochs=budget_epochs)
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
    tuner.fit()
    return {"strategy": strategy, "seed": seed, "epochs_to_target": stopper.epochs_to_target,
            "epochs": stopper.epochs, "trials": len(stopper.trials), "repeats": stopper.repeats,
            "best": stopper.best, "curve": stopper.curve, "seconds": time.time() - start}


def _quantile(values: list[float], q: float) -> float:
    """Linear-interpolated quantile where "not reached" (inf) counts as the largest value."""
    import numpy as np

    with np.errstate(invalid="ignore"):
        v = float(np.percentile(np.asarray(values, dtype=float), q * 100))
    return math.inf if math.isnan(v) else v  # between two infs the interpolation gives nan


def _fmt(v: float) -> str:
    return "n/r" if not math.isfinite(v) else f"{v:.0f}"


def machine() -> str:
    """CPU model, cores and library versions of this machine."""
    from importlib.metadata import version

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (f"{cpu}, {os.cpu_count()} cores; python {platform.python_version()}, torch {version('torch')}, "
            f"ray {version('ray')}, optuna {version('optuna')}")


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
    bench = TableBench(_WORKER["curves"], target) if bench_name == "table" else HartmannBench(bench_name, target)
    return {"benchmark": bench_name,
            **search_once(strategy, seed, bench, budget, n_startup, Path(storage), budget_epochs,
                          {_slot(_WORKER["slot"]): 1})}


def _slot(index: int) -> str:
    return f"search-driver-{index}"


def _run_searches(jobs: list[tuple], drivers: int, curves_path: str, verbose: bool) -> list[dict]:
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
                    print(f"  {run['benchmark']:<14} {run['strategy']:<16} seed {run['seed']:2d}: "
                          f"{run['epochs_to_target']} trial-epochs to target, {run['trials']} trials, best "
                          f"{run['best']:.3f}, {run['seconds']:.1f} s", flush=True)
            pool.close()  # let the drivers disconnect from Ray and exit, rather than be terminated
            pool.join()
    finally:
        ray.shutdown()
    return runs


def _env() -> None:
    # inherited by the search drivers: a private local cluster without dashboard or token
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")  # no per-trial result files: less overhead
    os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "1000000")  # nothing to resume
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")


def replay(args: argparse.Namespace) -> int:
    """Run every strategy over the seeds on the learning-curve table and print its table."""
    import tempfile

    _env()
    if not Path(args.curves).is_file():
        print(f"{args.curves}: no curves table; build it with --build-table", file=sys.stderr)
        return 2
    curves = load_curves(Path(args.curves))
    import pandas as pd

    train_s = pd.read_parquet(args.curves).groupby("config")["train_seconds"].first()
    target, p_hit = random_full_target(curves, args.reference_trials)
    scores = sorted((peak(c), k) for k, c in curves.items())
    budget = args.budget_trials
    n_startup = args.n_startup if args.n_startup is not None else max(3, args.reference_trials // 3)
    print(f"machine: {machine()}")
    print(f"table:   {args.curves}: {len(curves)} configurations x {EPOCHS} epochs; best val mIoU per configuration "
          f"{scores[0][0]:.2f} .. {scores[-1][0]:.2f} (median {scores[len(scores) // 2][0]:.2f});\n"
          f"         built in {train_s.sum() / 60:.0f} CPU-minutes of training ({train_s.median():.0f} s per "
          f"configuration, 1 thread, {FIXED['data.max_train']}/{FIXED['data.max_val']} images at "
          f"{FIXED['data.image_size']} px, train.seed {FIXED['train.seed']})")
    print("         grid: " + ", ".join(f"{k} {v}" for k, v in GRID.items()))
    print(f"target:  {target:.2f} val mIoU = median best of {args.reference_trials} fully trained random trials "
          f"(exact from the table); {p_hit * len(curves):.0f} of {len(curves)} configurations reach it")
    print(f"search:  ASHA grace {GRACE_PERIOD}, reduction {REDUCTION_FACTOR}, max_t {EPOCHS}; TPE "
          f"n_startup_trials {n_startup}; at most {budget} trials per search, one trial at a time; seeds "
          f"0..{args.seeds - 1}; {args.drivers} searches side by side on one Ray cluster", flush=True)

    start = time.time()
    strategies = [s for s in STRATEGIES if s in args.strategies]
    with tempfile.TemporaryDirectory(prefix="search-efficiency-") as tmp:
        jobs = [(s, seed, "table", target, budget, 0, n_startup, tmp) for seed in range(args.seeds)
                for s in strategies]
        runs = _run_searches(jobs, args.drivers, str(args.curves), args.verbose)
    replay_s = time.time() - start
    print_table(runs, strategies, budget, random_full_exact(curves, target, budget))
    print(f"replay: {len(runs)} searches in {replay_s:.0f} s")
    return 0


def published(args: argparse.Namespace) -> int:
    """Every strategy over the seeds on the multi-fidelity Hartmann benchmarks: trial-epochs to the
    target regret and the regret reached with the budget, per benchmark; then the plots."""
    import tempfile

    from bench.hartmann import PRESETS

    _env()
    benchmarks = [b for b in args.benchmarks if b != "table"]
    strategies = [s for s in STRATEGIES if s in args.strategies]
    n_startup = args.n_startup if args.n_startup is not None else 10
    print(f"machine: {machine()}")
    for name in benchmarks:
        bench = HartmannBench(name)
        kind, preset = name.split("-")
        base = getattr(bench.function, "base", bench.function)
        mixed = ", 3 dimensions a choice of 5 levels" if kind == "mixed6" else ""
        print(f"{name:<16}{base.name} (minimum {base.minimum}){mixed}, "
              f"bias/noise {PRESETS[preset]}; target regret {bench.target_regret}")
    print(f"search:  ASHA grace {HartmannBench.grace_period}, reduction {HartmannBench.reduction_factor}, max_t "
          f"{HartmannBench.max_t} (fidelity {', '.join(map(str, bench.fidelities))} at epochs 1..{bench.max_t});\n"
          f"         TPE n_startup_trials {n_startup}; "
          f"{args.budget_epochs} trial-epochs per search, one trial at a time; seeds 0..{args.seeds - 1}", flush=True)
    start = time.time()
    with tempfile.TemporaryDirectory(prefix="search-efficiency-") as tmp:
        jobs = [(s, seed, b, None, args.budget_epochs, args.budget_epochs, n_startup, tmp)
                for b in benchmarks for seed in range(args.seeds) for s in strategies]
        runs = _run_searches(jobs, args.drivers, "", args.verbose)
    if args.save:
        Path(args.save).write_text(json.dumps(runs))
    ratios = {}
    for name in benchmarks:
        ratios[name] = print_hartmann(name, [r for r in runs if r["benchmark"] == name], strategies, args.budget_epochs)
    plot_regret(runs, benchmarks, strategies, args.budget_epochs, Path(args.plot))
    print(f"{len(runs)} searches in {time.time() - start:.0f} s; regret curves: {args.plot}")
    default = DEFAULT_BENCHMARK if DEFAULT_BENCHMARK in ratios else benchmarks[0]
    print(f"asha+tpe / asha+random = {ratios[default]:.2f}  ({default}, median trial-epochs to the target)")
    return 0


def _final_regret(run: dict) -> float:
    return -run["best"] if math.isfinite(run["best"]) else math.inf


def print_hartmann(name: str, runs: list[dict], strategies: list[str], budget: int) -> float:
    """One benchmark's table; returns the ratio asha+tpe pruned / asha+random of median trial-epochs."""
    def epochs(strategy: str) -> list[float]:
        return _epochs(runs, strategy)

    print(f"\n{name}: trial-epochs to the target regret (n/r: not within {budget}) and the regret reached with "
          f"{budget} trial-epochs, over {len({r['seed'] for r in runs})} seeds")
    print(f"{'strategy':<20}{'reached':>9}{'median':>8}{'IQR':>11}{'regret median':>15}{'IQR':>15}{'repeats':>9}")
    for s in strategies:
        values = epochs(s)
        regrets = [_final_regret(r) for r in runs if r["strategy"] == s]
        repeats = [r["repeats"] / r["trials"] for r in runs if r["strategy"] == s and r["trials"]]
        print(f"{s:<20}{sum(math.isfinite(v) for v in values):>5}/{len(values):<3}{_fmt(_quantile(values, 0.5)):>8}"
              f"{_fmt(_quantile(values, 0.25)) + '-' + _fmt(_quantile(values, 0.75)):>11}"
              f"{_quantile(regrets, 0.5):>15.3f}{f'{_quantile(regrets, 0.25):.3f}-{_quantile(regrets, 0.75):.3f}':>15}"
              f"{_quantile(repeats, 0.5):>9.0%}")
    out = math.nan
    for a in (s for s in strategies if s != "asha+random"):
        if "asha+random" not in strategies:
            break
        x, y = _quantile(epochs(a), 0.5), _quantile(epochs("asha+random"), 0.5)
        if math.isfinite(x) and math.isfinite(y):
            lo, hi = _ratio_interval(epochs(a), epochs("asha+random"))
            text = f"{x / y:5.2f}  (90% bootstrap over seeds {lo:.2f}-{hi:.2f})"
        else:
            text = "n/a (a median not reached)"
        print(f"  ratio of medians {a} / asha+random: {text}")
        if a == "asha+tpe pruned" and math.isfinite(x) and math.isfinite(y):
            out = x / y
    return out


def plot_regret(runs: list[dict], benchmarks: list[str], strategies: list[str], budget: int, path: Path) -> None:
    """Median (and quartiles) over seeds of the best true regret found against trial-epochs, per benchmark."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    cols = min(3, len(benchmarks))
    rows = -(-len(benchmarks) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5 * cols, 3.6 * rows), squeeze=False)
    steps = np.arange(1, budget + 1)
    for ax, name in zip(axes.flat, benchmarks):
        for s in strategies:
            curves = []
            for r in (r for r in runs if r["benchmark"] == name and r["strategy"] == s):
                best = np.full(budget, np.inf)
                for epoch, score in r["curve"]:
                    if math.isfinite(score) and epoch <= budget:
                        best[epoch - 1:] = np.minimum(best[epoch - 1:], -score)
                curves.append(best)
            if not curves:
                continue
            with np.errstate(invalid="ignore"):  # quartiles of seeds that found nothing yet: inf
                q = np.percentile(np.asarray(curves), [25, 50, 75], axis=0)
            ax.plot(steps, q[1], label=s)
            ax.fill_between(steps, q[0], q[2], alpha=0.15)
        ax.set_yscale("log")
        ax.set_title(name)
        ax.set_xlabel("trial-epochs")
        ax.set_ylabel("best true regret")
    for ax in list(axes.flat)[len(benchmarks):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _epochs(runs: list[dict], strategy: str) -> list[float]:
    """Trial-epochs to the target per seed (inf: not reached), in seed order."""
    return [r["epochs_to_target"] if r["epochs_to_target"] is not None else math.inf
            for r in sorted((r for r in runs if r["strategy"] == strategy), key=lambda r: r["seed"])]


def _ratio_interval(x: list[float], y: list[float] | float, rounds: int = 2000) -> tuple[float, float]:
    """90 % bootstrap interval of median(x) / median(y), resampling seeds (the same seeds for both)."""
    import numpy as np

    rng = np.random.default_rng(0)
    x_arr = np.asarray(x, dtype=float)
    ratios = []
    for _ in range(rounds):
        idx = rng.integers(0, len(x_arr), len(x_arr))
        num = _quantile(list(x_arr[idx]), 0.5)
        den = y if isinstance(y, float) else _quantile([y[i] for i in idx], 0.5)
        ratios.append(num / den if math.isfinite(den) else (math.nan if not math.isfinite(num) else 0.0))
    ratios = [r for r in ratios if not math.isnan(r)]
    return _quantile(ratios, 0.05), _quantile(ratios, 0.95)


def print_table(runs: list[dict], strategies: list[str], budget: int, exact_full: list[float]) -> None:
    """Median, IQR and range of trial-epochs to the target per strategy, then the ratios and the verdict."""
    medians = {}
    print()
    print(f"{'strategy':<22}{'reached':>9}{'median':>8}{'IQR':>11}{'min-max':>11}{'trials':>8}{'repeats':>9}")
    for s in strategies:
        values = _epochs(runs, s)
        trials = [r["trials"] for r in runs if r["strategy"] == s]
        repeats = [r["repeats"] / r["trials"] for r in runs if r["strategy"] == s and r["trials"]]
        medians[s] = _quantile(values, 0.5)
        reached = sum(math.isfinite(v) for v in values)
        print(f"{s:<22}{reached:>5}/{len(values):<3}{_fmt(medians[s]):>8}"
              f"{_fmt(_quantile(values, 0.25)) + '-' + _fmt(_quantile(values, 0.75)):>11}"
              f"{_fmt(min(values)) + '-' + _fmt(max(values)):>11}{_quantile(trials, 0.5):>8.0f}"
              f"{_quantile(repeats, 0.5):>9.0%}")
    q25, q50, q75 = exact_full
    print(f"{'random full (exact)':<22}{'':>9}{_fmt(q50):>8}{_fmt(q25) + '-' + _fmt(q75):>11}")
    print(f"trial-epochs to the target over seeds; n/r = not reached within {budget} trials; trials = median "
          f"trials started;\nrepeats = median share of trials that re-ran a configuration the search had already "
          f"tried; (exact) = from the table, no sampling noise")
    for s in strategies:
        print(f"  {s:<16} per seed: " + " ".join(_fmt(v) for v in _epochs(runs, s)))

    def ratio(a: str, b: str | None) -> tuple[float, str]:
        if a not in medians or (b is not None and b not in medians):
            return math.nan, "-"
        x = medians[a]
        y = medians[b] if b else q50
        if not (math.isfinite(x) and math.isfinite(y)):
            return math.nan, "n/a"
        lo, hi = _ratio_interval(_epochs(runs, a), _epochs(runs, b) if b else float(q50))
        return x / y, f"{x / y:5.2f}  (90% bootstrap over seeds {lo:.2f}-{hi:.2f})"

    print()
    rows = [("pruned / stock", "asha+tpe pruned", "asha+tpe stock"),
            ("pruned / random full", "asha+tpe pruned", "random full"),
            ("pruned / random full (exact)", "asha+tpe pruned", None),
            ("asha+random / random full", "asha+random", "random full")]
    results = {}
    for label, a, b in rows:
        results[label], text = ratio(a, b)
        print(f"ratio of medians  {label:<30}{text}")
    print()
    print("acceptance: pruned needs no more trial-epochs than stock: "
          f"{_verdict(results['pruned / stock'], 1.0)}; at most a third of random full's: "
          f"{_verdict(results['pruned / random full'], 1 / 3)} (replayed), "
          f"{_verdict(results['pruned / random full (exact)'], 1 / 3)} (exact)")


def _verdict(ratio: float, limit: float) -> str:
    if math.isnan(ratio):
        return "undecided"
    return "met" if ratio <= limit + 1e-12 else "NOT met"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--build-table", action="store_true", help="train the grid and write the curves table")
    p.add_argument("--jobs", type=int, default=2, help="table build: configurations trained side by side")
    p.add_argument("--curves", default=str(CURVES), help="curves table to replay")
    p.add_argument("--seeds", type=int, default=30, help="searches per strategy and benchmark (seeds 0..N-1)")
    p.add_argument("--reference-trials", type=int, default=12,
                   help="fully trained random trials whose median best is the target (default: launch.py's CPU "
                        "--num-samples)")
    p.add_argument("--budget-trials", type=int, default=48, help="trials a search may start before giving up")
    p.add_argument("--n-startup", type=int, help="TPE's random start-up trials (default as launch.py for "
                   "--num-samples REFERENCE_TRIALS: max(3, REFERENCE_TRIALS // 3))")
    p.add_argument("--strategies", nargs="+", default=list(STRATEGIES), choices=STRATEGIES, metavar="S",
                   help=f"subset of: {', '.join(STRATEGIES)}")
    p.add_argument("--drivers", type=int, default=4, help="searches run side by side (each one trial at a time)")
    p.add_argument("-v", "--verbose", action="store_true", help="print every search")
    p.add_argument("--benchmarks", nargs="+", default=[*HARTMANN_DEFAULTS, "table"], metavar="B",
                   choices=[*HARTMANN, "table"], help=f"of: {', '.join(HARTMANN)}, table")
    p.add_argument("--budget-epochs", type=int, default=600, help="Hartmann: trial-epochs per search")
    p.add_argument("--save", help="Hartmann: write every search's result (JSON) to this file")
    p.add_argument("--plot", default=str(ROOT / "bench" / "search_efficiency.png"), help="regret curves (PNG)")
    p.add_argument("--quick", action="store_true", help=f"{DEFAULT_BENCHMARK} only, asha+tpe pruned against "
                   "asha+random, 10 seeds, 600 trial-epochs: about 2 minutes")
    args = p.parse_args(argv)
    if args.build_table:
        build_table(args.jobs)
        return 0
    if args.quick:
        args.benchmarks, args.budget_epochs = [DEFAULT_BENCHMARK], 600
        args.strategies = ["asha+tpe pruned", "asha+random"]
        args.seeds = min(args.seeds, 10)
    code = published(args) if any(b != "table" for b in args.benchmarks) else 0
    if "table" in args.benchmarks and code == 0:
        code = replay(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
