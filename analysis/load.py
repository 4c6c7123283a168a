"""Read an experiment directory into DataFrames, from the files on disk alone.

Works on a finished, running, resumed or copied experiment: each trial folder's ``params.json``
and ``result.json`` (one JSON line per epoch) are read; a half-written last line of a running
trial is skipped. Nothing is re-run and no model code is imported.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from search_spaces.algorithms import SCHEDULERS
from search_spaces.driver.record import ExperimentRecord, read_record
from trainable.config import flatten
from trainable.errors import UserError
from trainable.layout import (
    ERROR_FILE,
    EXPERIMENT_FILE,
    JOURNAL_FILE,
    PARAMS_FILE,
    REFUSED_FILE,
    RESULT_FILE,
    SCHEDULE_FILE,
    STOPPED_FILE,
    checkpoint_dirs,
    trial_dirs,
)
from trainable.metrics import DEFAULT_METRIC, METRICS

__all__ = ["Experiment", "checkpoint_of", "failures", "load_experiment", "load_study", "metric_of", "own_trials",
           "starting_point", "stop_reason", "trial_status"]



@dataclass
class Experiment:
    path: Path
    record: ExperimentRecord  # experiment.json: the space, the search's settings, the baseline config
    trials: pd.DataFrame  # one row per trial: status, epochs, wall time, config columns
    epochs: pd.DataFrame  # one row per trial x reported epoch: when (Unix time), metrics, per-class IoU

    @property
    def searched(self) -> list[str]:
        return self.record.searched

    def summary(self) -> pd.DataFrame:
        """One row per trial with its score and rank on the experiment's metric (``trial_summary``)."""
        from analysis.tables import trial_summary

        return trial_summary(self.trials, self.epochs, self.record.baseline, self.record.metric, self.record.mode)

    def threads(self, trial: str) -> int:
        """The CPU threads trial ``trial`` trained on (as it reported them; before trials reported
        them: what Ray gives a trial of ``cpus_per_trial`` CPUs)."""
        reported = self.trials.set_index("trial")["threads"].get(trial) if "threads" in self.trials else None
        return int(reported) if pd.notna(reported) else max(1, int(self.record.cpus_per_trial))

    def retrain_candidates(self, trial: str | None = None,
                           top: int | None = None) -> list[tuple[str, dict, int, float]]:
        """(name, config, CPU threads, score) of trial ``trial``, or of the best ``top`` (default 1): what
        ``retrain`` trains again."""
        from analysis.rank import select

        chosen = select(self.summary(), trial, top)
        return [(t.trial, self.params(t.trial), self.threads(t.trial), t.score) for t in chosen.itertuples()]

    def schedules(self, trials: list[str], fixed: bool = False) -> dict[str, list[dict]] | None:
        """The augmentation schedules a retrain of ``trials`` replays: a population search's, unless
        ``fixed`` (its final settings throughout); None for any other search."""
        if fixed and not self.record.population:
            raise UserError(f"--fixed: {self.path} is not a population search (--scheduler pbt or pb2), so its "
                            f"trials have no augmentation schedule to replace; drop --fixed")
        return {name: self.schedule(name) for name in trials} if self.record.population and not fixed else None

    def schedule(self, trial: str) -> list[dict]:
        """The augmentation schedule of trial ``trial`` (``schedule.json`` in its folder): one segment
        when nothing changed its settings."""
        from trainable.schedule import read_schedule

        path = self.path / trial / SCHEDULE_FILE
        try:
            record = read_schedule(self.path / trial)
        except (OSError, ValueError) as e:
            raise UserError(f"{path}: the trial's augmentation schedule is unreadable ({e})") from None
        if record is None:
            raise UserError(f"{path}: missing; the trial started before this version wrote schedules: retrain it "
                            f"with --fixed")
        return record["schedule"]

    def params(self, trial: str) -> dict:
        """The config trial ``trial`` trained (``trained_config``)."""
        try:
            config = trained_config(self.path / trial)
        except (OSError, ValueError) as e:
            raise UserError(f"{self.path / trial}: the trial's config is unreadable ({e})") from None
        if not config:
            raise UserError(f"{self.path / trial / PARAMS_FILE}: missing; the trial's config is unknown")
        return config

    def checkpoint(self, trial: str | None = None) -> Path:
        """The last checkpoint of ``trial`` (default: the best trial), the epoch it is ranked at."""
        from analysis.rank import select

        name = select(self.summary(), trial).iloc[0]["trial"]
        kept = checkpoint_dirs(self.path / name)
        if not kept:
            raise UserError(f"{self.path / name}: the trial kept no checkpoint")
        return kept[-1]

    def long_table(self) -> pd.DataFrame:
        """Every trial x every reported epoch, with the trial's status and config (``trials.parquet``)."""
        return self.trials.merge(self.epochs, on="trial", how="left")


def trial_status(rows: list[dict], max_epochs: int, folder: Path, scheduler: str = "asha") -> str:
    """completed, stopped by the scheduler at epoch e (e.g. "stopped by ASHA at epoch 2"), diverged at
    epoch e (with the reason), errored, refused or running (from the files alone).

    A trial that failed and was then retried from its checkpoint keeps Ray's ``error.txt``: it is
    completed or stopped if it got there, running if it reported after its last failure, and
    errored only otherwise.
    """
    if (folder / REFUSED_FILE).exists():
        return "refused"
    reason = stop_reason(rows, folder)
    if reason:
        return reason.split(";")[0]  # "diverged at epoch 2: training loss became nan"
    if rows and rows[-1].get("epoch", 0) >= max_epochs:
        return "completed"
    if rows and rows[-1].get("done"):  # Tune marks the result on which the scheduler stopped a trial
        return f"stopped by {SCHEDULERS[scheduler].name} at epoch {rows[-1].get('epoch')}"
    if (folder / ERROR_FILE).exists():
        failed_at = _failure_times(folder)
        if failed_at and rows and rows[-1].get("timestamp", 0) > failed_at[-1]:
            return "running"  # retried from its checkpoint and reporting again
        return "errored"
    return "running"


def stop_reason(rows: list[dict], folder: Path) -> str:
    """Why a trial ended on its own before its last epoch (a diverged loss), or ``""``."""
    if rows and rows[-1].get("stop_reason"):
        return str(rows[-1]["stop_reason"])
    stopped = folder / STOPPED_FILE
    return stopped.read_text().strip() if stopped.is_file() else ""


def failures(folder: Path) -> int:
    """How many times Ray recorded a failure of the trial (each one retried while retries were left)."""
    error = folder / ERROR_FILE
    if not error.is_file():
        return 0
    return max(1, len(_FAILURE.findall(error.read_text(errors="replace"))))


_FAILURE = re.compile(r"^Failure # \d+ \(occurred at (\S+)\)", re.MULTILINE)


def _failure_times(folder: Path) -> list[float]:
    """Unix times of the failures Ray logged in ``error.txt`` (its local-time stamps)."""
    error = folder / ERROR_FILE
    if not error.is_file():
        return []
    times = []
    for stamp in _FAILURE.findall(error.read_text(errors="replace")):
        try:
            times.append(time.mktime(time.strptime(stamp, "%Y-%m-%d_%H-%M-%S")))
        except ValueError:
            continue
    return times


def _read_rows(path: Path) -> list[dict]:
    rows = []
    if path.is_file():
        for line in path.read_text().splitlines():
            try:
                rows.append(json.loads(line))
            except ValueError:
                continue  # a running trial's last line may be half written
    return rows


def trained_config(folder: Path, rows: list[dict] | None = None) -> dict:
    """The config a trial's weights last trained with: its ``schedule.json``'s (Tune's ``params.json``
    takes a population search's new settings even when the exploit came at the last boundary and
    never trained), else ``params.json``, else its first result's."""
    from trainable.schedule import read_schedule

    schedule = read_schedule(folder)
    if schedule is not None:
        return schedule["config"]
    params = folder / PARAMS_FILE
    if params.is_file():
        return json.loads(params.read_text())
    return rows[0]["config"] if rows else {}


def starting_point(target: str, trial: str | None = None) -> tuple[ExperimentRecord, str, str, dict]:
    """What a search started ``--from target`` builds on: the experiment's record, where it is (its URI for
    an object store's), its best trial (or ``trial``) and that trial's config."""
    from search_spaces.driver.warmstart import location
    from trainable.objectstore import local

    try:
        exp = load_experiment(local(target, checkpoints=False))
        name, config, _, _ = exp.retrain_candidates(trial)[0]
    except UserError as e:
        raise UserError(f"--from {target}: {e}") from None
    return exp.record, location(target), name, config


def load_experiment(path: str | Path) -> Experiment:
    """Load ``path``; a missing folder or one not written by launch.py gets a one-line error."""
    path = Path(path).expanduser()
    if not path.is_dir():
        raise UserError(f"{path}: experiment folder not found")
    record = read_record(path)
    max_epochs = record.max_t
    trial_rows, epoch_rows = [], []
    for folder in trial_dirs(path):
        rows = _read_rows(folder / RESULT_FILE)
        config = trained_config(folder, rows)
        trial_rows.append({
            "trial": folder.name,
            "status": trial_status(rows, max_epochs, folder, record.scheduler),
            "epochs": int(rows[-1]["epoch"]) if rows else 0,
            "wall_time_s": float(rows[-1]["time_total_s"]) if rows else 0.0,
            "node": rows[-1].get("node", "") if rows else "",
            "threads": rows[-1].get("threads") if rows else None,
            "failures": failures(folder),
            **flatten(config),
        })
        for r in rows:
            epoch_rows.append({"trial": folder.name, "epoch": int(r["epoch"]), "timestamp": r.get("timestamp"),
                               **{m: r.get(m) for m in METRICS},
                               **{f"iou/{k}": v for k, v in (r.get("iou") or {}).items()}})
    trials = pd.DataFrame(trial_rows, columns=None if trial_rows else ["trial", "status", "epochs", "wall_time_s"])
    epochs = pd.DataFrame(epoch_rows, columns=None if epoch_rows else ["trial", "epoch", "timestamp", *METRICS])
    if trials.empty:
        raise UserError(f"{path}: the experiment has no trials yet; run or resume it with python launch.py resume "
                        f"{path} first")
    for col in trials.columns:  # list-valued config keys (e.g. TTA scales) as text, so parquet can store them
        if trials[col].map(lambda v: isinstance(v, list)).any():
            trials[col] = trials[col].map(lambda v: ",".join(map(str, v)) if isinstance(v, list) else v)
    return Experiment(path=path, record=record, trials=trials, epochs=epochs)


def checkpoint_of(target: str | Path, trial: str | None = None) -> Path:
    """``target`` itself (a checkpoint folder or file), or for an experiment folder the last
    checkpoint of ``trial`` (default: the best trial)."""
    target = Path(target).expanduser()
    if (target / EXPERIMENT_FILE).is_file():
        return load_experiment(target).checkpoint(trial)
    if trial:
        raise UserError(f"--trial {trial}: needs an experiment folder, and {target} is none")
    return target


def metric_of(target: str | Path) -> str:
    """The metric the experiment holding ``target`` (itself, a trial's checkpoint in it, or a retrain
    of it) ranks by; a checkpoint outside any experiment: the course's mIoU."""
    target = Path(target).expanduser().resolve()
    for folder in (target, *target.parents):
        if (folder / EXPERIMENT_FILE).is_file():
            return read_record(folder).metric
    return DEFAULT_METRIC


def load_study(exp: Experiment):
    """The experiment's Optuna study from its journal file, or None (ablations have none)."""
    import optuna

    from search_spaces.driver.searcher import journal_storage

    journal = exp.path / JOURNAL_FILE
    if not journal.is_file():
        return None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.load_study(study_name=exp.record.name, storage=journal_storage(journal))


def own_trials(study):
    """``study`` without the trials a warm start seeded it with (an in-memory copy when it has any)."""
    import optuna

    from search_spaces.driver.warmstart import WARM_START_ATTR

    trials = study.get_trials(deepcopy=False)
    own = [t for t in trials if WARM_START_ATTR not in t.user_attrs]
    if len(own) == len(trials):
        return study
    copy = optuna.create_study(directions=study.directions)
    copy.add_trials(own)
    return copy
