"""Search efficiency: trial-epochs each strategy needs to reach what random search with full training finds.

A tabular benchmark. ``--build-table`` trains a grid of configurations once on the built-in
synthetic set (64 px, otherwise the CPU defaults of ``launch.py``) with the project's plain
training loop and stores every learning curve in ``bench/data/curves.parquet``. The default mode
replays those curves through Ray Tune with a trainable that looks its configuration's curve up
and reports one epoch per result, so a whole search takes seconds and many seeds fit in minutes:

    python -m bench.search_efficiency --build-table [--jobs 2]   # once; about an hour on 2 busy cores
    python -m bench.search_efficiency [--seeds 20]                # the replay; a few minutes

Strategies, each searching ``tune.choice`` over the grid levels (so every sample is in the table):

- ``asha+tpe pruned``: ASHA + Optuna TPE, stopped trials told to Optuna as PRUNED
  (``search_spaces.driver.make_searcher``, the project's coupling);
- ``asha+tpe stock``: ASHA + Ray's ``OptunaSearch``, which tells them COMPLETE with their early score;
- ``asha+random``: ASHA + random sampling;
- ``random full``: random sampling, every trial trained to the last epoch;
- ``asha+tpe multivariate``: the PRUNED coupling with Optuna 5's default (multivariate) TPE;
- ``asha+tpe 12 candidates`` / ``asha+tpe 5 start-up``: the default with TPE's ``n_ei_candidates=12``
  (24 by default) / ``n_startup_trials=5`` (the benchmark's, ``--n-startup``, otherwise);
- ``asha+tpe repeats``: the default without ``search_spaces.unvisited``, free to draw a configuration
  it already tried (on the table's finite grid);
- ``asha+tpe refused-as-fail``: the PRUNED coupling as it was before refused configurations became
  infeasible (told FAIL), for the ``budget6`` benchmark, whose refused half stands for a parameter budget;
- ``asha+tpe 3 brackets``: the default's searcher behind Ray's ASHA with ``brackets=3`` (later brackets
  start stopping later), for benchmarks where early scores lie (``crossing6``);
- ``hyperband+tpe pruned``: the default's searcher behind the product's ``--scheduler hyperband``;
- ``hyperband+bohb``: Ray's ``TuneBOHB`` with ``HyperBandForBOHB`` (needs ``hpbandster`` and ``ConfigSpace``);
- the peers of ``bench/peers.py`` (Optuna alone, Syne Tune, SMAC3, DEHB), one process each, no Ray.

Benchmarks (``--benchmarks``): the MF-Hartmann presets of ``bench/hartmann.py``, the crossing learning
curves of ``bench/crossing.py`` (``crossing6``) and the learning-curve table (``table``).

Target: the median, over random searches of ``--reference-trials`` fully trained trials, of the
best val mIoU found (a trial scores its best epoch, as the project reports trials), computed
exactly from the table. A search's cost is the number of trial-epochs reported until some trial
reports a val mIoU at or above the target; each search runs one trial at a time, so the count is
exact and does not depend on timing. Every search is seeded (TPE sampler, random generator).

The table lives in ``bench/curve_table.py``, the benchmarks as searches (Hartmann, the stopper that
counts, one search, many side by side) in ``bench/searches.py``; this script runs and reports them.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# after the path they need
from bench.curve_table import (  # noqa: E402
    CURVES,
    EPOCHS,
    FIXED,
    GRACE_PERIOD,
    GRID,
    REDUCTION_FACTOR,
    build_table,
    load_curves,
    peak,
    random_full_exact,
    random_full_target,
)
from bench.peers import PEERS, available_peers, run_peers  # noqa: E402
from bench.searches import (  # noqa: E402
    BENCHMARKS,
    DEFAULT_BENCHMARK,
    HARTMANN_DEFAULTS,
    REFUSED_ABOVE,
    STRATEGIES,
    HartmannBench,
    make_bench,
    run_searches,
    search_env,
)

# the peers of --quick: the others take minutes a search here (Syne Tune's BORE and CQR refit a model on
# every suggestion)
QUICK_PEERS = ["optuna tpe+hyperband", "optuna tpe+sha", "syne-tune bohb", "smac hyperband", "dehb"]


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



def replay(args: argparse.Namespace) -> int:
    """Run every strategy over the seeds on the learning-curve table and print its table."""
    import tempfile

    search_env()
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
    strategies = chosen_strategies(args)
    with tempfile.TemporaryDirectory(prefix="search-efficiency-") as tmp:
        jobs = [(s, seed, "table", target, budget, 0, n_startup, tmp) for seed in range(args.seeds)
                for s in strategies if s in STRATEGIES]
        runs = run_searches(jobs, args.drivers, str(args.curves), args.verbose) if jobs else []
    runs += run_peers([(s, seed, "table", target, 0, budget, str(args.curves)) for seed in range(args.seeds)
                       for s in strategies if s in PEERS], args.drivers, args.verbose)
    replay_s = time.time() - start
    print_table(runs, strategies, budget, random_full_exact(curves, target, budget))
    print(f"replay: {len(runs)} searches in {replay_s:.0f} s")
    return 0


def published(args: argparse.Namespace) -> int:
    """Every strategy over the seeds on the multi-fidelity Hartmann benchmarks: trial-epochs to the
    target regret and the regret reached with the budget, per benchmark; then the plots."""
    import tempfile

    from bench.hartmann import PRESETS

    search_env()
    benchmarks = [b for b in args.benchmarks if b != "table"]
    strategies = chosen_strategies(args)
    n_startup = args.n_startup if args.n_startup is not None else 10
    print(f"machine: {machine()}")
    for name in benchmarks:
        bench = make_bench(name)
        if name == "crossing6":
            print(f"{name:<16}crossing learning curves (bench/crossing.py), 6 dimensions, reported with noise; "
                  f"target regret {bench.target_regret} at the best epoch")
            continue
        kind, preset = name.split("-")
        base = getattr(bench.function, "base", bench.function)
        mixed = {"mixed6": ", 3 dimensions a choice of 5 levels",
                 "budget6": f", x0 + x1 + x2 > {REFUSED_ABOVE} refused (half the cube; the peers do not run it: "
                            "they have no refused trials)"}.get(kind, "")
        print(f"{name:<16}{base.name} (minimum {base.minimum}){mixed}, "
              f"bias/noise {PRESETS[preset]}; target regret {bench.target_regret}")
    hartmann = HartmannBench(DEFAULT_BENCHMARK)
    print(f"search:  ASHA grace {hartmann.grace_period}, reduction {hartmann.reduction_factor}, max_t "
          f"{hartmann.max_t} (Hartmann fidelity {', '.join(map(str, hartmann.fidelities))} at epochs "
          f"1..{hartmann.max_t});\n"
          f"         TPE n_startup_trials {n_startup}; "
          f"{args.budget_epochs} trial-epochs per search, one trial at a time; seeds 0..{args.seeds - 1}", flush=True)
    start = time.time()
    with tempfile.TemporaryDirectory(prefix="search-efficiency-") as tmp:
        # at most as many trials as trial-epochs: a refused trial costs no epoch but takes a trial, as it takes
        # one of the product's --num-samples
        jobs = [(s, seed, b, None, args.budget_epochs, args.budget_epochs, n_startup, tmp)
                for b in benchmarks for seed in range(args.seeds) for s in strategies if s in STRATEGIES]
        runs = run_searches(jobs, args.drivers, "", args.verbose) if jobs else []
    runs += run_peers([(s, seed, b, None, args.budget_epochs, args.budget_epochs, "") for b in benchmarks
                       if not b.startswith("budget6") for seed in range(args.seeds) for s in strategies if s in PEERS],
                      args.drivers, args.verbose)
    if args.save:
        Path(args.save).write_text(json.dumps(runs))
    ratios = {}
    for name in benchmarks:
        ratios[name] = print_hartmann(name, [r for r in runs if r["benchmark"] == name], strategies, args.budget_epochs)
    plot_regret(runs, benchmarks, strategies, args.budget_epochs, Path(args.plot))
    print(f"{len(runs)} searches in {time.time() - start:.0f} s; regret curves: {args.plot}")
    default = DEFAULT_BENCHMARK if DEFAULT_BENCHMARK in ratios else benchmarks[0]
    against_random, against_peer, peer = ratios[default]
    if {"asha+tpe pruned", "asha+random"} <= set(strategies):
        print(f"asha+tpe / asha+random = {against_random:.2f}  ({default}, median trial-epochs to the target)")
    if peer:
        shown = f"{against_peer:.2f}" if math.isfinite(against_peer) else "n/a (a median not reached)"
        print(f"asha+tpe / best peer = {shown}  ({default}, {peer})")
    return 0


def chosen_strategies(args: argparse.Namespace) -> list[str]:
    """The strategies asked for, in the table's order, less the peers that cannot run here (each named
    with its reason; one asked for by name is an error)."""
    missing = {p: why for p, why in available_peers().items() if why}
    for peer in (p for p in args.strategies if p in missing):
        if args.strategies_given:
            raise SystemExit(f"error: {peer}: {missing[peer]}; pip install -e '.[bench]' (bench/README.md)")
        print(f"{peer}: left out, {missing[peer]}")
    return [s for s in [*STRATEGIES, *PEERS] if s in args.strategies and s not in missing]


def _final_regret(run: dict) -> float:
    return -run["best"] if math.isfinite(run["best"]) else math.inf


def print_hartmann(name: str, runs: list[dict], strategies: list[str], budget: int) -> tuple[float, float, str]:
    """One benchmark's table; returns the ratios of median trial-epochs asha+tpe pruned / asha+random
    and asha+tpe pruned / the best peer, and the best peer's name."""
    strategies = [s for s in strategies if any(r["strategy"] == s for r in runs)]
    def epochs(strategy: str) -> list[float]:
        return _epochs(runs, strategy)

    print(f"\n{name}: trial-epochs to the target regret (n/r: not within {budget}) and the regret reached with "
          f"{budget} trial-epochs, over {len({r['seed'] for r in runs})} seeds")
    print(f"{'strategy':<26}{'reached':>9}{'median':>8}{'IQR':>11}{'regret median':>15}{'IQR':>15}{'repeats':>9}"
          f"{'refused':>9}")
    for s in strategies:
        values = epochs(s)
        own = [r for r in runs if r["strategy"] == s]
        regrets = [_final_regret(r) for r in own]
        repeats = [r["repeats"] / r["trials"] for r in own if r["trials"]]
        refused = [r.get("refused", 0) / (r["trials"] + r.get("refused", 0)) for r in own if r["trials"]]
        print(f"{s:<26}{sum(math.isfinite(v) for v in values):>5}/{len(values):<3}{_fmt(_quantile(values, 0.5)):>8}"
              f"{_fmt(_quantile(values, 0.25)) + '-' + _fmt(_quantile(values, 0.75)):>11}"
              f"{_quantile(regrets, 0.5):>15.3f}{f'{_quantile(regrets, 0.25):.3f}-{_quantile(regrets, 0.75):.3f}':>15}"
              f"{_quantile(repeats, 0.5):>9.0%}{_quantile(refused, 0.5):>9.0%}")
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
    against_peer, peer = _against_best_peer(runs, strategies)
    if "asha+tpe 3 brackets" in strategies:
        _against_best_peer(runs, strategies, "asha+tpe 3 brackets")
    return out, against_peer, peer


def _against_best_peer(runs: list[dict], strategies: list[str], ours: str = "asha+tpe pruned") -> tuple[float, str]:
    """Prints and returns ``ours`` / the peer with the lowest median trial-epochs, and that peer's name
    (ties and unreached medians broken by the median regret reached with the budget)."""
    peers = [s for s in strategies if s in PEERS]
    if ours not in strategies or not peers:
        return math.nan, ""

    def regret(strategy: str) -> float:
        return _quantile([_final_regret(r) for r in runs if r["strategy"] == strategy], 0.5)

    best = min(peers, key=lambda p: (_quantile(_epochs(runs, p), 0.5), regret(p)))
    x, y = _quantile(_epochs(runs, ours), 0.5), _quantile(_epochs(runs, best), 0.5)
    if not (math.isfinite(x) and math.isfinite(y)):
        print(f"  ratio of medians {ours} / best peer ({best}): n/a (a median not reached); median regret "
              f"{regret(ours):.3f} against {regret(best):.3f}")
        return math.nan, best
    lo, hi = _ratio_interval(_epochs(runs, ours), _epochs(runs, best))
    print(f"  ratio of medians {ours} / best peer ({best}): {x / y:5.2f}  (90% bootstrap over seeds "
          f"{lo:.2f}-{hi:.2f})")
    return x / y, best


def plot_regret(runs: list[dict], benchmarks: list[str], strategies: list[str], budget: int, path: Path) -> None:
    """Median (and quartiles) over seeds of the best true regret found against trial-epochs, per benchmark."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    cols = min(3, len(benchmarks))
    rows = -(-len(benchmarks) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5 * cols + 2, 3.6 * rows), squeeze=False, layout="constrained")
    steps = np.arange(1, budget + 1)
    colours = {s: plt.get_cmap("tab10")(i % 10) for i, s in enumerate(strategies)}  # a strategy's, every panel
    legend: dict[str, object] = {}
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
            # the product's default bold, the peers dashed: which line is whose at a glance
            legend[s], = ax.plot(steps, q[1], label=s, color=colours[s], linestyle="--" if s in PEERS else "-",
                                 linewidth=2.4 if s == "asha+tpe pruned" else 1.2)
            ax.fill_between(steps, q[0], q[2], alpha=0.12, color=colours[s])
        legend["target"] = ax.axhline(make_bench(name).target_regret, color="black", linewidth=0.8, linestyle=":")
        ax.set_yscale("log")
        ax.set_title(name)
        ax.set_xlabel("trial-epochs")
        ax.set_ylabel("best true regret")
    for ax in list(axes.flat)[len(benchmarks):]:
        ax.axis("off")
    labels = [s for s in [*strategies, "target"] if s in legend]
    fig.legend([legend[s] for s in labels], labels, loc="outside right center", fontsize=8)  # off the curves
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
            ("pruned / asha+random", "asha+tpe pruned", "asha+random"),
            ("asha+random / random full", "asha+random", "random full")]
    results = {}
    for label, a, b in rows:
        results[label], text = ratio(a, b)
        print(f"ratio of medians  {label:<30}{text}")
    _against_best_peer(runs, strategies)
    print()
    print("acceptance: pruned needs no more trial-epochs than stock: "
          f"{_verdict(results['pruned / stock'], 1.0)}; at most a third of random full's: "
          f"{_verdict(results['pruned / random full'], 1 / 3)} (replayed), "
          f"{_verdict(results['pruned / random full (exact)'], 1 / 3)} (exact); at most 0.8 of asha+random's: "
          f"{_verdict(results['pruned / asha+random'], 0.8)}")


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
    p.add_argument("--strategies", nargs="+", choices=[*STRATEGIES, *PEERS], metavar="S",
                   help=f"subset of: {', '.join([*STRATEGIES, *PEERS])} (default: all of them that are installed)")
    p.add_argument("--drivers", type=int, default=4, help="searches run side by side (each one trial at a time)")
    p.add_argument("-v", "--verbose", action="store_true", help="print every search")
    p.add_argument("--benchmarks", nargs="+", default=[*HARTMANN_DEFAULTS, "table"], metavar="B",
                   choices=[*BENCHMARKS, "table"], help=f"of: {', '.join(BENCHMARKS)}, table")
    p.add_argument("--budget-epochs", type=int, default=600, help="Hartmann: trial-epochs per search")
    p.add_argument("--save", help="Hartmann: write every search's result (JSON) to this file")
    p.add_argument("--plot", default=str(ROOT / "bench" / "search_efficiency.png"), help="regret curves (PNG)")
    p.add_argument("--quick", action="store_true", help=f"{DEFAULT_BENCHMARK} only, asha+tpe pruned against "
                   f"asha+random and the peers of a few seconds a search ({', '.join(QUICK_PEERS)}), 10 seeds, "
                   "600 trial-epochs: a few minutes")
    args = p.parse_args(argv)
    args.strategies_given = args.strategies is not None
    args.strategies = args.strategies or [*STRATEGIES, *PEERS]
    if args.build_table:
        build_table(args.jobs)
        return 0
    if args.quick:
        args.benchmarks, args.budget_epochs = [DEFAULT_BENCHMARK], 600
        args.strategies = ["asha+tpe pruned", "asha+random", *QUICK_PEERS]
        args.seeds = min(args.seeds, 10)
    code = published(args) if any(b != "table" for b in args.benchmarks) else 0
    if "table" in args.benchmarks and code == 0:
        code = replay(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
