"""Every file name of an experiment folder, and the one way files are written there: whole or not at all.

    EXP/
      experiment.json            the experiment record (search_spaces.driver.record)
      holdout.txt                the training images held out for validation, when the data has no
                                 validation split (data.holdout points here)
      mirrored.txt               the training masks the label audit found mirrored, and data.mirrored
      mirrored.png               those masks over their images, left/right classes marked (a contact sheet)
      wandb/  mlflow.db  .aim/   the runs of search --tracker wandb, mlflow, aim, offline
      optuna.journal             the Optuna study (optuna-dashboard EXP/optuna.journal)
      experiment_state-*.json    Ray Tune's own state (with tuner.pkl and the searcher's state)
      trial_<id>/                one folder per trial
        params.json  result.json  progress.csv  events.out.tfevents.*   written by Tune's loggers
        error.txt                Ray's record of each failure of the trial
        refused.txt  stopped.txt why a trial ended without training, or before its last epoch
        schedule.json            its augmentation settings by epoch, with the trials a population
                                 search copied them from (trainable.schedule)
        checkpoint_NNNNNN/checkpoint.pt  schedule.json
      orphaned/                  trial folders a killed driver started but never recorded
      analysis/                  python -m analysis: report.md, report.html (one self-contained page),
                                 trials.parquet, tables/, plots/ (with gallery.png, worst.png and
                                 confusion.png of the best trial)
      retrain/<trial>[-seedK]/   python launch.py retrain: model.pt, model.safetensors, config.json,
                                 summary.json, curves.csv, curves.png, machine.json, gallery.png,
                                 worst.png, confusion.png, and with --submission: submission/,
                                 submission.zip, SUBMISSION.md

A staged search (``search --space augmentation,loss``) is a folder of experiments, one per stage:

    RUN/
      stages.json                the spaces in order and the flags every stage is built from
      1-augmentation/  2-loss/   one experiment folder each (as above); each record names the
                                 experiment and trial its baseline came from
      analysis/                  python -m analysis RUN: the stages compared

``params.json``, ``result.json``, ``progress.csv`` and ``error.txt`` are Ray Tune's names (its
``ray.tune.result`` constants; a test checks they still agree). Nothing else in the package spells
one of these names.

A file or folder is written under a temporary name beside its target and renamed onto it once
complete (``replacing``), so a reader sees the previous version or the new one, never part of one;
a writer killed midway leaves only a ``.partial-*`` name behind, which ``remove_partial_files``
clears before a resume.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

__all__ = [
    "ANALYSIS_DIR",
    "CHECKPOINT_FILE",
    "ERROR_FILE",
    "EXPERIMENT_FILE",
    "HOLDOUT_FILE",
    "JOURNAL_FILE",
    "MIRRORED_FILE",
    "MIRRORED_SHEET",
    "MODEL_FILE",
    "ORPHANED_DIR",
    "PARAMS_FILE",
    "PICTURE_FILES",
    "PROGRESS_FILE",
    "REFUSED_FILE",
    "RESULT_FILE",
    "RETRAIN_DIR",
    "RETRAIN_FILES",
    "SCHEDULE_FILE",
    "SOLUTION_FILES",
    "STAGES_FILE",
    "STOPPED_FILE",
    "SUBMISSION_DIR",
    "SUBMISSION_NOTE",
    "TEMP_MARK",
    "TRACKER_STORES",
    "TRIAL_PREFIX",
    "checkpoint_dirs",
    "has_tune_state",
    "remove_partial_files",
    "replacing",
    "stage_dir_name",
    "trial_dir_name",
    "trial_dirs",
]

EXPERIMENT_FILE = "experiment.json"
HOLDOUT_FILE = "holdout.txt"
SUBMISSION_DIR = "submission"  # retrain --submission: EXP/retrain/<trial>/submission/ and submission.zip
# a submission's solution/ folder (predict --submission ce7454-2025), named by the 2025 rules
SOLUTION_FILES = {"weights": "ckpt.pth", "requirements": "requirements.txt", "script": "run.py"}
MIRRORED_FILE = "mirrored.txt"
MIRRORED_SHEET = "mirrored.png"
# where search --tracker keeps each tracker's runs inside the experiment (search_spaces.driver.trackers)
TRACKER_STORES = {"wandb": "wandb", "mlflow": "mlflow.db", "aim": ".aim"}
JOURNAL_FILE = "optuna.journal"
STAGES_FILE = "stages.json"  # in the folder of a staged search, beside its stages' experiments
TUNE_STATE_GLOB = "experiment_state-*.json"

TRIAL_PREFIX = "trial_"
PARAMS_FILE = "params.json"
RESULT_FILE = "result.json"
PROGRESS_FILE = "progress.csv"
ERROR_FILE = "error.txt"
REFUSED_FILE = "refused.txt"
STOPPED_FILE = "stopped.txt"
SCHEDULE_FILE = "schedule.json"
CHECKPOINT_GLOB = "checkpoint_*"
CHECKPOINT_FILE = "checkpoint.pt"

ORPHANED_DIR = "orphaned"
ANALYSIS_DIR = "analysis"
RETRAIN_DIR = "retrain"
MODEL_FILE = "model.pt"
# what a retrain writes beside its weights, by role
RETRAIN_FILES = {"safetensors": "model.safetensors", "config": "config.json", "summary": "summary.json",
                 "curves": "curves.csv", "curves_plot": "curves.png", "machine": "machine.json"}
SUBMISSION_NOTE = "SUBMISSION.md"  # written beside a submission zip
# a model's pictures (trainable.pictures), by role: in a retrain's folder, and in an analysis's plots/
PICTURE_FILES = {"gallery": "gallery.png", "worst": "worst.png", "confusion": "confusion.png"}

TEMP_MARK = ".partial-"  # in the name of a file being written; left behind only by a killed writer


def trial_dir_name(trial_id: str) -> str:
    """The folder of Tune trial ``trial_id`` (``--trial`` accepts either)."""
    return trial_id if trial_id.startswith(TRIAL_PREFIX) else f"{TRIAL_PREFIX}{trial_id}"


def stage_dir_name(number: int, space: str) -> str:
    """The experiment folder of stage ``number`` (from 1) of a staged search, e.g. ``2-loss``."""
    return f"{number}-{space}"


def trial_dirs(exp_dir: str | Path) -> list[Path]:
    """The experiment's trial folders, sorted by name."""
    return sorted(p for p in Path(exp_dir).glob(f"{TRIAL_PREFIX}*") if p.is_dir())


def checkpoint_dirs(trial_dir: str | Path) -> list[Path]:
    """A trial's kept checkpoint folders, oldest first (Tune numbers them in order)."""
    return sorted(p for p in Path(trial_dir).glob(CHECKPOINT_GLOB) if (p / CHECKPOINT_FILE).is_file())


def has_tune_state(exp_dir: str | Path) -> bool:
    """Whether Ray Tune saved the experiment's state (a driver killed before its first save did not)."""
    return any(Path(exp_dir).glob(TUNE_STATE_GLOB))


def _temp_name(path: Path) -> Path:
    return path.with_name(f"{TEMP_MARK}{uuid.uuid4().hex[:8]}-{path.name}")


@contextlib.contextmanager
def replacing(path: str | Path, replace_folder: bool = False) -> Iterator[Path]:
    """A temporary path beside ``path`` to write a file (or build a folder) at; renamed onto ``path``
    when the block ends without an error, removed when it raises.

    A folder replaces an existing folder only with ``replace_folder`` (the old one is moved aside
    first, then deleted): without it a folder already at ``path`` makes the rename fail.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_name(path)
    try:
        yield tmp
        if replace_folder and path.is_dir() and tmp.is_dir():
            old = _temp_name(path)
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)
        raise


def remove_partial_files(root: str | Path) -> int:
    """Delete what killed writers left half-written under ``root`` (call only while nothing writes
    there, e.g. before a resume); returns how many files went."""
    partial = [p for p in Path(root).rglob(f"{TEMP_MARK}*") if p.is_file()]
    for p in partial:
        p.unlink(missing_ok=True)
    return len(partial)
