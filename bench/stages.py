"""Staged searches against one search of all their keys, and a search given more trials against one
run with them from the start.

    python -m bench.stages [--seeds 3] [--num-samples 12] [--max-epochs 8] [--quick]

On the built-in synthetic set at the CPU defaults (400 training and 100 validation pairs at 64 px),
through the real command line, per seed:

- *stages*: ``search --space augmentation,loss,optimizer`` (``--num-samples N`` each stage) against
  ``search --space full`` (all their keys, plus the model's) with 3N trials. ASHA decides how many
  trial-epochs either spends, so the two are compared at the same budget: the best val mIoU either
  had reported once it had spent the trial-epochs the smaller of the two spent in all (and each
  one's own best trial, by the ranking every verb uses). The winner of each (the last stage's best
  trial; the full search's best) is then retrained with a new seed (``retrain --seeds 2``: the
  first seed repeats the trial exactly), which says whether it holds up beyond the noise it won on.
- *more trials*: ``search --space augmentation --num-samples N/2`` then ``resume --num-samples N``,
  against ``search --num-samples N`` with the same seed: their best scores, and how many
  configurations the two drew alike.

Prints a table per part and the ratios: stages / full (equal trial-epochs), retrained stages winner /
full winner, extended / from the start.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from analysis.compare import best_so_far
from analysis.load import load_experiment
from analysis.rank import best_first
from bench.data_pipeline import machine
from trainable.layout import RETRAIN_FILES, stage_dir_name

ROOT = Path(__file__).resolve().parent.parent
STAGES = ("augmentation", "loss", "optimizer")
METRIC = "val_miou"


def launch(*args: str) -> str:
    """Run ``python launch.py ARGS``; its output (a failure ends the benchmark with it)."""
    proc = subprocess.run([sys.executable, "launch.py", *args], cwd=ROOT, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"error: python launch.py {' '.join(args)} failed (exit {proc.returncode}):\n"
                 f"{proc.stdout[-3000:]}{proc.stderr[-3000:]}")
    return proc.stdout


def best(exp_dir: Path) -> tuple[str, float]:
    """(trial, score) of the experiment's best trial."""
    row = best_first(load_experiment(exp_dir).summary().dropna(subset=["rank"])).iloc[0]
    return row["trial"], float(row["score"])


def curve(exp_dirs: list[Path]):
    """Best-so-far against the trial-epochs spent over ``exp_dirs`` run one after the other."""
    return best_so_far([load_experiment(d) for d in exp_dirs], staged=True)


def at_budget(points, budget: int) -> float:
    """The best value reported once ``budget`` trial-epochs were spent."""
    return float(points[points["trial_epochs"] <= budget]["best"].max())


def retrained(exp_dir: Path, out: Path) -> float:
    """The val mIoU of the best trial retrained with the next seed (its own seed repeats the trial)."""
    launch("retrain", str(exp_dir), "--seeds", "2", "--out", str(out))
    summaries = sorted(out.glob(f"*/{RETRAIN_FILES['summary']}"))
    return float(json.loads(summaries[-1].read_text())[METRIC])  # the -seed<K+1> folder sorts last


def staged_vs_full(seed: int, common: list[str], storage: Path, n: int) -> dict:
    start = time.perf_counter()
    launch("search", "--space", ",".join(STAGES), "--name", f"staged-{seed}", "--num-samples", str(n), *common)
    staged_wall = time.perf_counter() - start
    stages = [storage / f"staged-{seed}" / stage_dir_name(i + 1, s) for i, s in enumerate(STAGES)]
    start = time.perf_counter()
    launch("search", "--space", "full", "--name", f"full-{seed}", "--num-samples", str(len(STAGES) * n), *common)
    full_wall = time.perf_counter() - start
    full = storage / f"full-{seed}"
    staged_curve, full_curve = curve(stages), curve([full])
    budget = min(int(staged_curve["trial_epochs"].max()), int(full_curve["trial_epochs"].max()))
    return {"seed": seed, "budget": budget,
            "staged trial-epochs": int(staged_curve["trial_epochs"].max()),
            "full trial-epochs": int(full_curve["trial_epochs"].max()),
            "staged at budget": at_budget(staged_curve, budget), "full at budget": at_budget(full_curve, budget),
            "staged best": best(stages[-1])[1], "full best": best(full)[1],
            "staged retrained": retrained(stages[-1], storage / f"retrain-staged-{seed}"),
            "full retrained": retrained(full, storage / f"retrain-full-{seed}"),
            "staged wall": staged_wall, "full wall": full_wall}


def extended_vs_once(seed: int, common: list[str], storage: Path, n: int) -> dict:
    launch("search", "--space", "augmentation", "--name", f"ext-{seed}", "--num-samples", str(n // 2), *common)
    launch("resume", str(storage / f"ext-{seed}"), "--num-samples", str(n))
    launch("search", "--space", "augmentation", "--name", f"once-{seed}", "--num-samples", str(n), *common)
    ext, once = load_experiment(storage / f"ext-{seed}"), load_experiment(storage / f"once-{seed}")

    def drawn(exp) -> set[str]:
        return {json.dumps(exp.params(t)["aug"], sort_keys=True) for t in exp.trials["trial"]}

    same = len(drawn(ext) & drawn(once))
    return {"seed": seed, "extended best": best(ext.path)[1], "once best": best(once.path)[1],
            "extended trials": len(ext.trials), "once trials": len(once.trials), "configurations alike": same}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=None, help="seeds 0..N-1 (default 3; --quick: 1)")
    ap.add_argument("--num-samples", type=int, default=12, help="trials per stage (the full search: 3x)")
    ap.add_argument("--max-epochs", type=int, default=None, help="epochs of a full trial (default: the CPU default, 8)")
    ap.add_argument("--quick", action="store_true", help="1 seed, 4 trials per stage of 3 epochs: a check that it runs")
    args = ap.parse_args()
    if args.quick:
        args.num_samples, args.max_epochs = 4, 3
    args.seeds = args.seeds or (1 if args.quick else 3)
    print(f"machine: {machine()}")
    with tempfile.TemporaryDirectory() as tmp:
        storage = Path(tmp)
        staged, extended = [], []
        for seed in range(args.seeds):
            common = ["--storage-path", str(storage), "--seed", str(seed)]
            common += ["--max-epochs", str(args.max_epochs)] if args.max_epochs else []
            if args.quick:
                common += ["--grace-period", "1"]
            staged.append(staged_vs_full(seed, common, storage, args.num_samples))
            extended.append(extended_vs_once(seed, common, storage, args.num_samples))
            print(json.dumps(staged[-1]), json.dumps(extended[-1]), flush=True)

    print(f"\nstages {','.join(STAGES)} ({args.num_samples} trials each) vs full ({3 * args.num_samples} trials), "
          f"val mIoU; 'at budget': the best reported once both had spent the smaller one's trial-epochs")
    keys = ["seed", "staged trial-epochs", "full trial-epochs", "staged at budget", "full at budget", "staged best",
            "full best", "staged retrained", "full retrained"]
    print(" | ".join(keys))
    for row in staged:
        print(" | ".join(f"{row[k]:.3f}" if isinstance(row[k], float) else str(row[k]) for k in keys))
    print(f"\nmore trials: augmentation, {args.num_samples // 2} trials then resumed to {args.num_samples}, vs "
          f"{args.num_samples} from the start")
    keys = ["seed", "extended best", "once best", "extended trials", "once trials", "configurations alike"]
    print(" | ".join(keys))
    for row in extended:
        print(" | ".join(f"{row[k]:.3f}" if isinstance(row[k], float) else str(row[k]) for k in keys))

    def ratio(a: str, b: str, rows: list[dict]) -> str:
        values = [r[a] / r[b] for r in rows]
        return f"{statistics.mean(values):.3f} (per seed: {', '.join(f'{v:.3f}' for v in values)})"

    print(f"\nstages / full at equal trial-epochs = {ratio('staged at budget', 'full at budget', staged)}")
    print(f"stages / full, best trials = {ratio('staged best', 'full best', staged)}")
    print(f"stages / full, winners retrained with a new seed = {ratio('staged retrained', 'full retrained', staged)}")
    print(f"extended / from the start, best = {ratio('extended best', 'once best', extended)}")


if __name__ == "__main__":
    main()
