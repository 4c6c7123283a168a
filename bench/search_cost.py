"""Search cost benchmark: the default search on 512 px masks against the same search on 64 px masks.

    python -m bench.search_cost [--num-samples 12] [--max-epochs 8] [--quick]

At the CPU defaults (``python launch.py --space augmentation``: 12 trials, 8 epochs, ASHA +
Optuna TPE, 400 training and 100 validation pairs at 64 px), on two synthetic sets of the same
faces, one written with 512 px images and masks (as CelebAMask-HQ) and one with 64 px (as the
built-in set), searched one after the other, each through the real command line. Validation is
scored at the masks' own size, so only the validation pass differs. ASHA stops different trials
on the two sets, so "the same trials and epochs" is the cost per trial-epoch, the last line (the
wall-time ratio is printed above it).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.data_pipeline import machine
from trainable.synthetic import generate

ROOT = Path(__file__).resolve().parent.parent


def search(data: Path, storage: Path, name: str, extra: list[str]) -> tuple[float, int, int]:
    """(wall seconds, trials, trial-epochs) of one default search on ``data``."""
    cmd = [sys.executable, "launch.py", "search", "--space", "augmentation", "--data", str(data),
           "--storage-path", str(storage), "--name", name, *extra]
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"error: the search on {data} failed (exit {proc.returncode}):\n{proc.stdout[-3000:]}"
                 f"{proc.stderr[-3000:]}")
    results = list((storage / name).glob("trial_*/result.json"))
    epochs = sum(len(r.read_text().splitlines()) for r in results)
    return wall, len(results), epochs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--num-samples", type=int, default=None, help="trials (default: the CPU default, 12)")
    ap.add_argument("--max-epochs", type=int, default=None, help="epochs of a full trial (default 8)")
    ap.add_argument("--quick", action="store_true", help="4 trials of 2 epochs: a check that it runs")
    args = ap.parse_args()
    extra = []
    if args.quick:
        args.num_samples, args.max_epochs = args.num_samples or 4, args.max_epochs or 2
        extra += ["--grace-period", "1"]
    if args.num_samples:
        extra += ["--num-samples", str(args.num_samples)]
    if args.max_epochs:
        extra += ["--max-epochs", str(args.max_epochs)]
    print(f"machine: {machine()}")
    print(f"python launch.py search --space augmentation {' '.join(extra)} on 400 + 100 synthetic pairs")
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for mask_px in (64, 512):
            data = generate(tmp / f"set{mask_px}", n_train=400, n_val=100, n_test=0, size=mask_px, seed=0)
            rows[mask_px] = search(data, tmp / "experiments", f"masks{mask_px}", extra)
    print(f"{'masks':>8} {'wall':>9} {'trials':>7} {'trial-epochs':>13} {'s / trial-epoch':>16}")
    for mask_px, (wall, trials, epochs) in rows.items():
        print(f"{mask_px:>5} px {wall:>8.0f}s {trials:>7} {epochs:>13} {wall / max(1, epochs):>16.2f}")
    (w64, _, e64), (w512, _, e512) = rows[64], rows[512]
    print(f"search on 512 px masks / 64 px masks = {w512 / w64:.2f} (wall)")
    print(f"search on 512 px masks / 64 px masks = {(w512 / e512) / (w64 / e64):.2f} (per trial-epoch)")


if __name__ == "__main__":
    main()
