"""The learning-curve table: a grid of configurations trained once on the built-in synthetic set,
every per-epoch val mIoU stored in ``bench/data/curves.parquet``, and the search that replays it
(``TableBench``) for ``bench/search_efficiency.py``.

``python -m bench.search_efficiency --build-table`` trains the grid with the project's plain
training loop (64 px, otherwise the CPU defaults of ``launch.py``); ``random_full_target`` and
``random_full_exact`` compute what random search with full training reaches, exactly from the table.
"""

from __future__ import annotations

import itertools
import json
import math
import time
from pathlib import Path

from bench.trials import report_epoch, resumed_epochs

__all__ = ["CURVES", "EPOCHS", "FIXED", "GRACE_PERIOD", "GRID", "REDUCTION_FACTOR", "TableBench", "build_table",
           "load_curves", "peak", "random_full_exact", "random_full_target"]

ROOT = Path(__file__).resolve().parents[1]
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
    from trainable.config import Config
    from trainable.loop import NonFiniteLossError
    from trainable.run import build_run, run_epoch

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

    def flat_space(self) -> dict[str, list]:
        """Grid key -> its levels (for the peers, which search flat spaces)."""
        return dict(GRID)

    def epoch_result(self, config: dict, epoch: int) -> dict:
        """What the configuration's trial reports after ``epoch`` epochs; ``config`` keyed as the grid."""
        point = tuple(float(config[k]) for k in GRID)
        return {"val_miou": self.curves[point][epoch - 1], "epoch": epoch, "point": str(point)}

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
