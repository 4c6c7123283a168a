"""Experiment trackers (``search --tracker wandb mlflow aim``): every trial logged as a run of the
tracker, with its config and per-epoch metrics, through Ray Tune's own logger callbacks.

Each tracker keeps its runs inside the experiment folder unless the user's environment points it
elsewhere, so that nothing leaves the machine by default:

- W&B offline, its files under ``EXP/wandb/`` (``wandb sync`` uploads them later); online, or in
  another folder, when the user configured W&B (``WANDB_MODE``, ``WANDB_API_KEY``, ``WANDB_DIR``);
- MLflow in the SQLite store ``EXP/mlflow.db``, or the store ``MLFLOW_TRACKING_URI`` names;
- Aim in a repo at ``EXP`` (``EXP/.aim``): aim 3.29 reads no variable for its repo.

The experiment name is W&B's project and MLflow's and Aim's experiment. The record keeps the names
(``ExperimentRecord.trackers``) and ``resume`` logs to them too: Ray pickles the callbacks with the run
config into ``tuner.pkl``, but those would log where the experiment was when it started (a folder it
may have left); the restored Tuner's tracker callbacks are built afresh for where it is now, in the
environment of ``resume`` (``tuner.build_tuner``).
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from trainable.errors import UserError
from trainable.layout import TRACKER_STORES
from trainable.objectstore import is_uri, uri_of

__all__ = ["TRACKERS", "Tracker", "check_trackers", "get_tracker", "tracker_callbacks", "tracker_lines",
           "without_trackers"]

MLFLOW_DB = TRACKER_STORES["mlflow"]  # the SQLite store of MLflow's runs, in the experiment folder
WANDB_DIR = TRACKER_STORES["wandb"]  # the folder W&B writes under the directory it is given (its own name)


class ExperimentRecord(Protocol):
    """What the trackers read of ``record.ExperimentRecord`` (which imports this module to check the names)."""

    name: str  # W&B's project, MLflow's and Aim's experiment
    trackers: list[str]

    @property
    def population(self) -> bool:  # a population search changes a trial's config as it trains
        ...


@dataclass(frozen=True)
class Tracker:
    """One experiment tracker: its package, where its runs go and the Ray callback that logs them."""

    package: str  # the module imported (and the pip distribution)
    extra: str  # pip install 'facesearch[EXTRA]'
    about: str  # what it is, for the help
    build: Callable[[Path, ExperimentRecord], Any]  # Ray's logger callback for the experiment in this folder
    where: Callable[[Path, ExperimentRecord], str]  # where its runs go, and the command that shows them
    in_experiment: Callable[[], bool]  # whether its runs go into the experiment folder (this environment)
    elsewhere: str  # how a user points it outside the experiment folder ("": no way)


# ---- W&B ----
def _wandb_mode() -> str:
    """The user's ``WANDB_MODE``; online when they gave an API key (``WANDB_API_KEY``); else offline."""
    return os.environ.get("WANDB_MODE") or ("online" if os.environ.get("WANDB_API_KEY") else "offline")


def _wandb_dir(exp_dir: Path) -> Path:
    """The folder given to ``wandb.init(dir=...)``, which writes under its ``wandb/``."""
    return Path(os.environ.get("WANDB_DIR") or exp_dir)


def _wandb_callback_class() -> type:
    """Ray's W&B callback, which also ends the runs of the trials an interrupt stopped (see below)."""
    from ray.air.integrations.wandb import WandbLoggerCallback

    class WandbCallback(WandbLoggerCallback):
        def on_experiment_end(self, trials, **info) -> None:
            # Tune ends no trial that an interrupt (Ctrl-C, SIGTERM) stopped: they go on at a resume. Ray's
            # callback then waits its whole upload timeout (30 min) for their runs, which never end: each
            # is ended now, as a finished trial's is (the logging actor of one that ended reads one end only;
            # tests/test_ray_optuna_internals.py: _trial_queues, _signal_logging_actor_stop)
            for trial in list(self._trial_queues):
                self._signal_logging_actor_stop(trial)
            super().on_experiment_end(trials, **info)

    WandbCallback.__qualname__ = "WandbCallback"
    return WandbCallback


def _build_wandb(exp_dir: Path, record: ExperimentRecord):
    from search_spaces.driver.trackers import WandbCallback  # (module __getattr__ below)

    mode = _wandb_mode()
    # the mode and folder go to wandb.init as arguments: Ray's logging actor runs in a worker process
    # whose environment is the Ray node's, not this command's (Ray passes it WANDB_API_KEY only)
    kwargs: dict[str, Any] = dict(project=record.name, mode=mode, dir=str(_wandb_dir(exp_dir)),
                                  # a population search changes a trial's config as it trains: its
                                  # values logged at each step show the schedule
                                  log_config=record.population)
    if mode == "offline" and not os.environ.get("WANDB_API_KEY"):
        # Ray's driver asks for an API key unless its own environment says WANDB_MODE=offline; an offline
        # run sends nothing and reads no key. Quiet (the console is Tune's), without git, system sampling
        # or machine probes: a plain dict, as Tune pickles it with the run config for a resume
        kwargs.update(api_key="offline-run-needs-no-key",
                      settings=dict(silent=True, disable_git=True, x_disable_stats=True, x_disable_machine_info=True,
                                    console="off"))
    return WandbCallback(**kwargs)


def _wandb_where(exp_dir: Path, record: ExperimentRecord) -> str:
    mode = _wandb_mode()
    if mode != "offline":
        return f"wandb ({mode}, project {record.name})"
    runs = _wandb_dir(exp_dir) / WANDB_DIR
    return f"wandb (offline in {runs}: wandb sync {runs}/offline-run-*)"


# ---- MLflow ----
def _mlflow_uri(exp_dir: Path) -> str:
    """The user's ``MLFLOW_TRACKING_URI``, else the experiment's SQLite store (MLflow 3.13+ refuses a
    plain ``./mlruns`` folder)."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path(exp_dir).resolve() / MLFLOW_DB}"


def _mlflow_callback_class() -> type:
    """Ray's MLflow callback, which also ends the runs of the trials an interrupt stopped."""
    from ray.air.integrations.mlflow import MLflowLoggerCallback

    class MLflowCallback(MLflowLoggerCallback):
        # Tune ends no trial that an interrupt (Ctrl-C, SIGTERM) stopped: it goes on, as a new run, at a
        # resume. Its run is ended KILLED rather than left RUNNING. (Tune marks such a trial TERMINATED
        # all the same, so the trials that started and did not end are counted here.)
        def setup(self, *args, **kwargs) -> None:
            super().setup(*args, **kwargs)
            self._running: set = set()

        def log_trial_start(self, trial) -> None:
            super().log_trial_start(trial)
            self._running.add(trial)

        def log_trial_end(self, trial, failed: bool = False) -> None:
            super().log_trial_end(trial, failed)
            self._running.discard(trial)

        def on_experiment_end(self, trials, **info) -> None:
            for trial in self._running:  # (_trial_runs: tests/test_ray_optuna_internals.py)
                self.mlflow_util.end_run(status="KILLED", run_id=self._trial_runs[trial])
            super().on_experiment_end(trials, **info)

    MLflowCallback.__qualname__ = "MLflowCallback"
    return MLflowCallback


def _build_mlflow(exp_dir: Path, record: ExperimentRecord):
    from search_spaces.driver.trackers import MLflowCallback  # (module __getattr__ below)

    # runs in this process: the store is opened by the driver, never by a trial on another node
    return MLflowCallback(tracking_uri=_mlflow_uri(exp_dir), experiment_name=record.name)


def _mlflow_where(exp_dir: Path, record: ExperimentRecord) -> str:
    return f"mlflow (mlflow ui --backend-store-uri {_mlflow_uri(exp_dir)})"


# ---- Aim ----
def _build_aim(exp_dir: Path, record: ExperimentRecord):
    from ray.tune.logger.aim import AimLoggerCallback

    # the repo given: Ray's default is its staging folder under /tmp/ray, which it copies into the
    # experiment file by file while Aim writes. Each run lives in this process: it would capture the
    # driver's console (Tune's table, not the trial's output) and sample the driver's machine
    return AimLoggerCallback(repo=str(exp_dir), experiment_name=record.name, capture_terminal_logs=False,
                             system_tracking_interval=None)


def _aim_where(exp_dir: Path, record: ExperimentRecord) -> str:
    return f"aim (aim up --repo {exp_dir})"


# Ray's callbacks with an end for the runs an interrupt leaves open, defined on first use: Ray's modules for
# them import the tracker's package, which is optional. Tune pickles them by name into tuner.pkl, and a
# resume finds them here again
_CALLBACK_CLASSES: dict[str, Callable[[], type]] = {"WandbCallback": _wandb_callback_class,
                                                    "MLflowCallback": _mlflow_callback_class}


def __getattr__(name: str) -> Any:
    if name not in _CALLBACK_CLASSES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = _CALLBACK_CLASSES[name]()
    return globals()[name]


TRACKERS: dict[str, Tracker] = {
    "wandb": Tracker("wandb", "wandb", "Weights & Biases, offline unless W&B is configured", _build_wandb,
                     _wandb_where, lambda: _wandb_mode() == "offline" and not os.environ.get("WANDB_DIR"),
                     "set WANDB_DIR to a local folder, or WANDB_MODE=online"),
    "mlflow": Tracker("mlflow", "mlflow", "MLflow, an SQLite store in the experiment unless MLFLOW_TRACKING_URI "
                      "is set", _build_mlflow, _mlflow_where, lambda: not os.environ.get("MLFLOW_TRACKING_URI"),
                      "set MLFLOW_TRACKING_URI to a tracking server or a local sqlite:/// file"),
    "aim": Tracker("aim", "aim", "Aim, a repo in the experiment folder", _build_aim, _aim_where, lambda: True, ""),
}


def get_tracker(name: str) -> Tracker:
    """The tracker called ``name``; an unknown name is one line listing the valid ones."""
    if name not in TRACKERS:
        raise UserError(f"--tracker {name}: valid trackers are {', '.join(TRACKERS)}")
    return TRACKERS[name]


def check_trackers(names: Iterable[str], where: str | Path | None = None) -> None:
    """Refuse, before Ray starts, a tracker that is unknown or whose package is missing; ``where``: the
    experiment (or its storage), whose object store, if it is in one, cannot keep a tracker's runs.

    An experiment in an object store is written by Ray straight to the store; the driver's own files go
    to a local mirror, uploaded once before the trials start. A tracker's store grows all through the
    search (an SQLite database, an Aim repo, W&B's run files) and would stay on the driver's machine
    only, out of the experiment (a resume elsewhere would start it again empty): such a tracker is
    refused unless the user points it outside the experiment folder."""
    trackers = {name: get_tracker(name) for name in names}
    missing = {name: t for name, t in trackers.items() if importlib.util.find_spec(t.package) is None}
    if missing:
        packages = " and ".join(t.package for t in missing.values())
        are = "packages are" if len(missing) > 1 else "package is"
        raise UserError(f"--tracker {' '.join(missing)}: the {packages} {are} not installed; pip install "
                        f"'facesearch[{','.join(t.extra for t in missing.values())}]'")
    if where is None or not (is_uri(where) or uri_of(where)):
        return
    for name, tracker in trackers.items():
        if tracker.in_experiment():
            fix = tracker.elsewhere or "search on a local or mounted --storage-path for it"
            raise UserError(f"--tracker {name}: {uri_of(where) or where} is in an object store, which cannot keep "
                            f"its runs (the driver uploads its own files once, before the trials); {fix}")


def tracker_callbacks(exp_dir: Path, record: ExperimentRecord) -> list:
    """Ray's logger callbacks of the record's trackers, for the experiment in ``exp_dir``."""
    callbacks = []
    for name in record.trackers:
        callback = get_tracker(name).build(Path(exp_dir), record)
        callback.tracker = name  # which callbacks a restored Tuner has built afresh (tuner.build_tuner)
        callbacks.append(callback)
    return callbacks


def without_trackers(callbacks: Iterable) -> list:
    """``callbacks`` less those ``tracker_callbacks`` built."""
    return [c for c in callbacks if not getattr(c, "tracker", None)]


def tracker_lines(exp_dir: Path, record: ExperimentRecord) -> list[str]:
    """The start-up line naming where each tracker's runs go and how to open them (none without trackers)."""
    if not record.trackers:
        return []
    return ["trackers:       " + ", ".join(get_tracker(n).where(Path(exp_dir), record) for n in record.trackers)]
