"""What a person reads while a search runs: Tune's status table (trial, status, the searched
parameters under their short names, epoch, metric), a line of overall progress and a line naming
the best trial so far.

Tune's own "Current best trial: <id> with val_miou=23.456789... and parameters={...}" line is
replaced: it prints the metric unrounded and the parameters under their full keys, and picks the
best by the last value alone, whereas the project ranks as ``analysis.rank`` does (trials that
completed every epoch first, then the epochs reached, then the score), so that the trial named here
is the one the summary, ``retrain`` and ``tta`` will take.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping
from typing import Any

from ray.tune import CLIReporter
from ray.tune.experiment import Trial

from search_spaces.base import rounded
from search_spaces.driver.record import ExperimentRecord
from trainable.config import flatten
from trainable.layout import trial_dir_name
from trainable.metrics import METRICS

__all__ = ["MIN_ENDED_FOR_ESTIMATE", "PROGRESS_EVERY_S", "progress_reporter"]

# progress: a status table at most this often (and when trials start or end)
PROGRESS_EVERY_S = 30
# the time left is shown once this many trials have ended in this run: fewer say little about the rest
MIN_ENDED_FOR_ESTIMATE = 3

# the line of Tune's text that is dropped: it names the driver's staging folder under /tmp/ray, not the
# experiment (``describe`` prints that, and the TensorBoard command)
_DROPPED = "Result logdir:"


def progress_reporter(record: ExperimentRecord) -> _Progress:
    """Tune's table with the columns a user watches: trial, status, each searched (or ablated)
    parameter under its short name, the epoch and the metric (and the device, when trials ask for
    GPUs); above it a progress line and the best trial's line, which names only those parameters,
    not the whole config. (Tune's newer output ignores a reporter: the search turns it off, see
    ``search.run_search``.)"""
    keys = list(record.levels) if record.ablation else record.searched
    device = {"device": "device"} if record.gpus_per_trial else {}  # a "GPU" torch cannot see trains on the CPU
    return _Progress(record,
                     parameter_columns={k.replace(".", "/"): k.split(".")[-1] for k in keys},
                     metric_columns={"epoch": "epoch", record.metric: record.metric_name, **device},
                     max_report_frequency=PROGRESS_EVERY_S, print_intermediate_tables=True)


class _Progress(CLIReporter):
    """Tune's CLI table without its "Result logdir" line, and with the project's progress and best
    trial lines in place of Tune's best trial line."""

    def __init__(self, record: ExperimentRecord, **kwargs: Any) -> None:
        # (metric and mode reach Tune's side through TuneConfig; given here too, Tune would refuse them)
        super().__init__(**kwargs)
        self.metric, self.mode = record.metric, record.mode
        self.max_epochs = record.max_t  # a trial at this epoch completed (analysis.load.trial_status)
        self.planned = record.planned_trials
        keys = list(record.levels) if record.ablation else record.searched
        self.columns = {k: k.split(".")[-1] for k in keys}  # dotted config key -> the table's short name
        self.started = time.time()  # replaced by the run's start in setup()

    def setup(self, start_time: float | None = None, total_samples: int | None = None,
              metric: str | None = None, mode: str | None = None, **kwargs: Any) -> None:
        """Tune's setup, keeping the run's start: a resumed search counts its time from the restore
        (Tune's own copy of it is private)."""
        super().setup(start_time=start_time, total_samples=total_samples, metric=metric, mode=mode, **kwargs)
        if start_time is not None:
            self.started = start_time

    def report(self, trials: list[Trial], done: bool, *sys_info: str) -> None:
        print(self.text(trials, done, *sys_info))

    def _current_best_trial(self, trials: list[Trial]) -> tuple[None, None]:
        """None: Tune renders no best trial line of its own (``best_line`` replaces it). Its line
        would also raise on a trial whose config lacks a column. (Private to Tune's reporter, called by
        ``_progress_str``: tests/test_ray_optuna_internals.py)"""
        return None, None

    def text(self, trials: list[Trial], done: bool, *sys_info: str, now: float | None = None) -> str:
        """What ``report`` prints: Tune's status text with our lines among its system lines (below
        the scheduler's and the resources' lines, above the table), less the staging folder's line."""
        ours = [self.progress_line(trials, now), self.best_line(trials)]
        # private to CLIReporter: tests/test_ray_optuna_internals.py
        text = self._progress_str(trials, done, *sys_info, *(line for line in ours if line))
        return "\n".join(line for line in text.splitlines() if not line.startswith(_DROPPED))

    def progress_line(self, trials: Iterable[Trial], now: float | None = None) -> str:
        """``progress: 5 of 12 trials ended, 23 trial-epochs, 4m10s elapsed, about 6 min left``."""
        trials = list(trials)
        now = time.time() if now is None else now
        elapsed = max(0.0, now - self.started)
        ended = [t for t in trials if t.is_finished()]  # TERMINATED (completed or stopped) or ERROR
        epochs = sum(_epoch(t.last_result) for t in trials)
        parts = [f"{len(ended)} of {self.planned} trials ended", f"{epochs} trial-epochs",
                 f"{_duration(elapsed)} elapsed"]
        # The estimate: the rate at which trials ended in this run (ended per elapsed second, which
        # already folds in how many run at once) applied to the trials not yet ended. Rough: a trial
        # still running counts as not begun, and ASHA stops some trials early and lets others run all
        # epochs. Trials that ended before a resume are left out of the rate: they took none of this
        # run's time (their last report is older than its start).
        this_run = [t for t in ended if t.last_result.get("timestamp", now) >= int(self.started)]
        remaining = max(0, self.planned - len(ended))
        if remaining and len(this_run) >= MIN_ENDED_FOR_ESTIMATE:
            parts.append(_time_left(elapsed / len(this_run) * remaining))
        return "progress: " + ", ".join(parts)

    def best_line(self, trials: Iterable[Trial]) -> str:
        """``best so far: trial_1a2b3c4d, val mIoU 31.42 at epoch 3 (rotate_limit 17.5, cutout_p 0.25)``,
        or ``""`` while no trial has a score."""
        scored = [t for t in trials if _score(t.last_result, self.metric) is not None]
        if not scored:
            return ""
        sign = 1.0 if self.mode == "max" else -1.0

        def order(t: Trial) -> tuple:  # analysis.rank.rank's order: completed, epochs reached, score
            epoch = _epoch(t.last_result)
            return epoch >= self.max_epochs, epoch, sign * _score(t.last_result, self.metric)

        best = max(scored, key=order)  # the first of equals, as the summary's stable sort
        metric = METRICS[self.metric]
        line = (f"best so far: {trial_dir_name(best.trial_id)}, {metric.name} "
                f"{_score(best.last_result, self.metric):{metric.fmt}} at epoch {_epoch(best.last_result)}")
        config = flatten(best.config)
        values = [f"{short} {_value(config[key])}" for key, short in self.columns.items() if key in config]
        return line + (f" ({', '.join(values)})" if values else "")


def _score(result: Mapping, metric: str) -> float | None:
    """The trial's last value of ``metric``; None without one, or NaN (a diverged trial reports NaN:
    never ranked, as in ``analysis.rank``)."""
    value = result.get(metric)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        return None
    return float(value)


def _epoch(result: Mapping) -> int:
    """The last epoch a trial reported (the trainable's ``epoch``, else Tune's count of reports), 0 before any."""
    value = result.get("epoch", result.get("training_iteration"))
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0


def _value(value: Any) -> str:
    """A searched value as the table and a ``--set`` line show it: floats at SIGNIFICANT_DIGITS."""
    value = rounded(value)
    return f"{value:g}" if isinstance(value, float) else str(value)


def _duration(seconds: float) -> str:
    """``42s``, ``4m10s``, ``2h05m``."""
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def _time_left(seconds: float) -> str:
    """``under a minute left``, ``about 6 min left`` (whole minutes), ``about 2.5 h left`` from two hours on."""
    minutes = round(seconds / 60)
    if minutes < 1:
        return "under a minute left"
    return f"about {minutes} min left" if minutes < 120 else f"about {seconds / 3600:.1f} h left"
