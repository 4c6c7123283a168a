"""Population Based Augmentation against ASHA + TPE at equal compute, on the built-in synthetic set.

For each seed: ``launch.py search --space augmentation --scheduler pbt`` with a population of
``--population`` trials, and the default ASHA + TPE search with ``--asha-samples`` trials (sized so
that its trial-epochs come close to the population's); then ``launch.py retrain`` of each winner
(the PBT winner twice: its schedule replayed, and ``--fixed``, its final settings throughout).
Everything runs through the real command line, one search at a time, each trial on one CPU.
Reports per seed and as means: best val mIoU of the search, trial-epochs spent (result rows, one per
trained epoch), and the retrained val mIoU.

    python -m bench.pbt [--seeds 3] [--population 4] [--asha-samples 8] [--max-train 200]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _launch(*args: str) -> str:
    env = {**os.environ, "RAY_AUTH_MODE": os.environ.get("RAY_AUTH_MODE", "disabled")}
    proc = subprocess.run([sys.executable, "launch.py", *args], cwd=ROOT, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"launch.py {' '.join(args)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc.stdout


def _search(storage: Path, name: str, seed: int, args: argparse.Namespace, extra: list[str]) -> dict:
    from analysis.load import load_experiment
    from analysis.rank import select

    start = time.time()
    _launch("search", "--space", "augmentation", "--storage-path", str(storage), "--name", name, "--seed", str(seed),
            "--set", f"data.max_train={args.max_train}", "--max-epochs", str(args.epochs), *extra)
    seconds = time.time() - start
    exp = load_experiment(storage / name)
    best = select(exp.summary()).iloc[0]
    return {"best": float(best["score"]), "trial": best["trial"], "trial_epochs": len(exp.epochs),
            "seconds": seconds, "path": storage / name}


def _retrain(exp: Path, out: Path, *flags: str) -> float:
    _launch("retrain", str(exp), "--out", str(out), *flags)
    (folder,) = out.iterdir()
    return float(json.loads((folder / "summary.json").read_text())["val_miou"])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--population", type=int, default=4)
    p.add_argument("--interval", type=int, default=2, help="PBT's perturbation interval (epochs)")
    p.add_argument("--asha-samples", type=int, default=8, help="ASHA + TPE trials (about equal trial-epochs)")
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--max-train", type=int, default=200, help="training images (the CPU default is 400)")
    args = p.parse_args(argv)
    from search_spaces.hardware import HARDWARE

    print(f"machine: {os.cpu_count()} cores; synthetic set, CPU defaults "
          f"({HARDWARE['cpu'].config['data.image_size']} px, {HARDWARE['cpu'].config['data.max_val']} validation "
          f"images) with {args.max_train} training images, {args.epochs} epochs; PBT population {args.population}, "
          f"interval {args.interval}; ASHA + TPE {args.asha_samples} trials; seeds 0..{args.seeds - 1}", flush=True)
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-pbt-") as tmp:
        storage = Path(tmp)
        for seed in range(args.seeds):
            pbt = _search(storage, f"pbt-{seed}", seed, args, ["--scheduler", "pbt", "--num-samples",
                                                               str(args.population), "--perturbation-interval",
                                                               str(args.interval)])
            asha = _search(storage, f"asha-{seed}", seed, args, ["--num-samples", str(args.asha_samples)])
            row = {"seed": seed, "pbt_best": pbt["best"], "pbt_epochs": pbt["trial_epochs"],
                   "asha_best": asha["best"], "asha_epochs": asha["trial_epochs"],
                   "pbt_replayed": _retrain(pbt["path"], storage / f"r-pbt-{seed}"),
                   "pbt_fixed": _retrain(pbt["path"], storage / f"f-pbt-{seed}", "--fixed"),
                   "asha_retrained": _retrain(asha["path"], storage / f"r-asha-{seed}"),
                   "pbt_s": pbt["seconds"], "asha_s": asha["seconds"]}
            rows.append(row)
            print(f"seed {seed}: PBT best {row['pbt_best']:.2f} ({row['pbt_epochs']} trial-epochs, "
                  f"{row['pbt_s']:.0f} s), retrained: schedule replayed {row['pbt_replayed']:.2f}, fixed "
                  f"{row['pbt_fixed']:.2f} | ASHA + TPE best {row['asha_best']:.2f} ({row['asha_epochs']} "
                  f"trial-epochs, {row['asha_s']:.0f} s), retrained {row['asha_retrained']:.2f}", flush=True)

    def mean(key: str) -> float:
        return statistics.mean(r[key] for r in rows)

    print(f"\nmeans over {len(rows)} seeds (val mIoU, %):")
    print(f"  search best:  PBT {mean('pbt_best'):.2f} ({mean('pbt_epochs'):.0f} trial-epochs)  |  ASHA + TPE "
          f"{mean('asha_best'):.2f} ({mean('asha_epochs'):.0f} trial-epochs)")
    print(f"  retrained:    PBT schedule replayed {mean('pbt_replayed'):.2f}, PBT fixed {mean('pbt_fixed'):.2f}  |  "
          f"ASHA + TPE {mean('asha_retrained'):.2f}")
    wins = sum(r["pbt_best"] >= r["asha_best"] for r in rows)
    replay_wins = sum(r["pbt_replayed"] >= r["pbt_fixed"] for r in rows)
    print(f"PBT >= ASHA + TPE (search best) on {wins}/{len(rows)} seeds; replayed >= fixed on "
          f"{replay_wins}/{len(rows)}")
    print(f"PBT / ASHA + TPE search best = {mean('pbt_best') / mean('asha_best'):.3f} at "
          f"{mean('pbt_epochs') / mean('asha_epochs'):.2f}x the trial-epochs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
