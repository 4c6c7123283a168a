"""A search from start to end: a new experiment checked before anything is written, the Tuner fit
with Ctrl-C and SIGTERM turned into a saved, resumable stop, and the books settled after a run.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from unittest.mock import patch  # patch.dict: set environment variables for a block, then restore them

from search_spaces.driver.cluster import ClusterShape
from search_spaces.driver.record import ExperimentRecord
from search_spaces.driver.searcher import journal_storage
from search_spaces.driver.session import check_storage, check_storage_early
from search_spaces.driver.storage import snapshots_after_uploads
from search_spaces.driver.trackers import tracker_lines
from search_spaces.driver.tuner import build_tuner
from trainable.config import Config
from trainable.errors import UserError
from trainable.layout import (
    EXPERIMENT_FILE,
    HOLDOUT_FILE,
    JOURNAL_FILE,
    MIRRORED_FILE,
    MIRRORED_SHEET,
    ORPHANED_DIR,
    has_tune_state,
    replacing,
    trial_dirs,
)
from trainable.objectstore import filesystem, is_uri, mirror_of, move, pull, push, uri_of

__all__ = ["SearchOutcome", "check_name", "create_experiment", "describe", "preflight", "run_search", "settle"]

# Tune's settings while a search fits (the user's own environment wins for the first two):
TUNE_ENV = {
    # Tune's newer console output ignores the progress reporter and prints the best trial's whole
    # config every half minute; progress.progress_reporter shows what a user watches instead
    "RAY_AIR_NEW_OUTPUT": "0",
    # snapshot the experiment state at every step, not every ~10 s: a killed driver then loses
    # (almost) nothing, and a resume neither reruns nor forgets a finished trial
    "TUNE_GLOBAL_CHECKPOINT_S": "0",
}
# Ctrl-C is handled here, like SIGTERM (see _stop_on_signals), not by Tune's own handler
TUNE_ENV_FORCED = {"TUNE_DISABLE_SIGINT_HANDLER": "1"}


@dataclass
class SearchOutcome:
    """How a fit ended: ``interrupted`` names the signal that stopped it (the state is saved and the
    search resumes), or is empty when every trial ended."""

    results: object  # Tune's ResultGrid
    interrupted: str = ""


def create_experiment(record: ExperimentRecord, storage_path: str, before_ray: bool = False,
                      notes: bool = True) -> Path:
    """The folder of a new search, after checking its name, its storage, its baseline model and its
    data; nothing of the experiment is written yet (``run_search`` writes the record). ``before_ray``:
    the checks before Ray tells the hardware (the built-in set, never refused, is not generated yet);
    ``notes``: print the data check's notes."""
    name = check_name(record.name)
    if is_uri(storage_path):
        return _create_in_store(f"{storage_path.rstrip('/')}/{name}", record, before_ray, notes)
    storage = Path(storage_path).expanduser().resolve()
    check_storage_early(storage)
    exp_dir = storage / record.name
    if exp_dir.exists():
        raise UserError(f"{exp_dir}: already exists; continue it with python launch.py resume {exp_dir} or choose "
                        f"another --name")
    preflight(record.config, before_ray, notes)
    check_storage(storage, None)
    return exp_dir


def check_name(name: str) -> str:
    """``name`` (``--name``), if it is a plain folder name that fits beside Ray's suffixes."""
    if not name.strip() or name in (".", "..") or any(sep in name for sep in "/\\"):
        raise UserError(f"--name {name!r}: must be a plain folder name (no '/' or '..'); use --storage-path to "
                        f"choose where it goes")
    if len(name.encode()) > 200:  # with Ray's suffixes, under the 255-byte limit of a file name
        raise UserError(f"--name {name[:20]}...: {len(name.encode())} bytes long; choose a name of at most 200")
    return name


def _create_in_store(uri: str, record: ExperimentRecord, before_ray: bool, notes: bool) -> Path:
    """A new search in an object store: the store reached and the name free there; its local mirror,
    where the driver keeps what it writes before uploading it, is returned."""
    fs, path = filesystem(uri)
    if fs.get_file_info(f"{path}/{EXPERIMENT_FILE}").size is not None:
        raise UserError(f"{uri}: already exists; continue it with python launch.py resume {uri} or choose "
                        f"another --name")
    preflight(record.config, before_ray, notes)
    exp_dir = mirror_of(uri)
    if not before_ray and exp_dir.exists():  # a mirror of an experiment the store no longer holds
        shutil.rmtree(exp_dir)
    check_storage(exp_dir.parent, None)
    return exp_dir


def describe(exp_dir: Path, record: ExperimentRecord, cluster: ClusterShape) -> list[str]:
    """What a search prints before its trials start: where it writes, what it searches, how, on what."""
    base = record.config
    if record.ablation:
        how = f"ablation (one factor at a time, {record.seeds} seed(s)), {record.planned_trials} trials in full"
    else:
        how = f"{record.strategy}, {record.num_samples} trials, by {record.metric_name}"
    data = f"the built-in synthetic set at {base.data.image_size} px" if record.synthetic else base.data.root
    rules = f"{record.challenge}: " if record.challenge else ""
    budget = f"at most {base.model.max_params:,} parameters" if base.model.max_params else "no parameter budget"
    return [f"results:        {uri_of(exp_dir) or exp_dir}",
            f"data:           {data}",
            f"rules:          {rules}{record.metric_name}, {budget}, "
            f"{'from scratch' if base.model.pretrained == 'none' else base.model.pretrained + ' weights'}",
            f"search:         space '{record.space}', {how}",
            *([f"starts from:    {record.parent}/{record.parent_trial} (its config is the baseline)"]
              if record.parent else []),
            *([f"warm start:     the trials of {', '.join(record.warm_start)}"] if record.warm_start else []),
            f"cluster:        {cluster.describe()}",
            f"each trial:     {record.cpus_per_trial:g} CPU, {record.gpus_per_trial:g} GPU, "
            f"{base.data.image_size} px, {record.max_t} epochs",
            *(f"note: {note}" for note in cluster.notes(record.trial)),
            f"tensorboard:    tensorboard --logdir {uri_of(exp_dir) or exp_dir}",
            *tracker_lines(exp_dir, record)]  # where each --tracker logs, and the command that shows it


def preflight(config: Config, before_ray: bool = False, notes: bool = True) -> Path | None:
    """Check the baseline model and the data before any trial starts: errors here cost seconds. The
    model goes first: its budget check is quick, a first pass over a large data set is not. Returns
    the data folder (the built-in synthetic set, generated now at the config's size, when
    ``data.root`` is empty; ``before_ray``: not yet, as it is never refused); ``notes``: print the notes."""
    from trainable.audit import MIRRORED_POLICIES, mirrored_flags
    from trainable.models import build_model
    from trainable.scan import scan_split
    from trainable.sources import data_root
    from trainable.splits import train_and_val

    build_model(config.model, aux_head=config.loss.aux_weight > 0)
    if before_ray and not config.data.root:
        return None
    found: list[str] = []
    root = data_root(config.data, found)
    train = scan_split(root, "train", cache_dir=config.data.cache_dir)
    found += train.notes[:5]
    if any(mirrored_flags(train.orientations)):  # what this search does with the masks the audit found
        found.append(f"data.mirrored={config.data.mirrored} {MIRRORED_POLICIES[config.data.mirrored]}")
    for note in found:
        if notes:
            print(f"note: {note}")  # before the validation split is checked, which may refuse the data
    found = []
    _, val = train_and_val(root, config.data, found)
    for note in [*found, *val.notes[:5]]:
        if notes:
            print(f"note: {note}")
    return root


def run_search(exp_dir: Path, record: ExperimentRecord, restore: bool, trainable_fn=None,
               cluster: ClusterShape | None = None, ray_settings: dict | None = None) -> SearchOutcome:
    """Fit the experiment's Tuner (writing its record first when it is new) and settle it.

    Ctrl-C or SIGTERM ends the fit the way Tune ends an interrupted run: it saves the experiment
    state, and the trials it stopped continue from their checkpoints on ``resume``. A second signal
    stops at once. ``cluster``: where it runs, to start as many trials at once as it holds;
    ``ray_settings``: entries of ``RAY_SETTINGS`` to override (``REUSE_ON_OWN_INSTANCE``).
    """
    restore = restore and has_tune_state(exp_dir)  # else killed before Tune first saved: start over there
    if not restore:  # (a record of an earlier version is upgraded as it starts over)
        exp_dir.mkdir(parents=True, exist_ok=True)
        _write_data_lists(exp_dir, record.config)
        record.write(exp_dir)
        if record.warm_start:
            from search_spaces.driver.warmstart import seed_study, seeded_trials

            seed_study(exp_dir / JOURNAL_FILE, record, seeded_trials(record, record.warm_start)[0])
        if uri_of(exp_dir):
            push(exp_dir)  # the record and the data lists, before any trial
    env = {**TUNE_ENV, **_pending(record, cluster)}
    env = {**env, **{k: os.environ[k] for k in env if k in os.environ}, **TUNE_ENV_FORCED}
    with patch.dict(os.environ, env), _stop_on_signals() as received, _without_tunes_resume_hint(), \
            snapshots_after_uploads():
        results = build_tuner(exp_dir, record, restore=restore, trainable_fn=trainable_fn,
                              ray_settings=ray_settings).fit()
    if uri_of(exp_dir):
        pull(uri_of(exp_dir), checkpoints=False)  # what the trials wrote, for the summary and settle
    if received:
        return SearchOutcome(results, interrupted=signal.Signals(received[0]).name)
    settle(results, exp_dir, record)
    return SearchOutcome(results)


def _pending(record: ExperimentRecord, cluster: ClusterShape | None) -> dict[str, str]:
    """How many trials Tune may start at once. Beside a search algorithm other than its own generator,
    Tune starts one trial at a time unless told otherwise: the next is created only once the previous
    one's process runs, and that process takes seconds to import torch, timm and smp, so short trials
    never ran side by side even with free slots. As many as the cluster holds (or ``--max-concurrent``)
    start together; the sampler draws their configurations as it would for trials running together."""
    slots = record.max_concurrent or (cluster.trial_slots(record.trial) if cluster else 0)
    return {"TUNE_MAX_PENDING_TRIALS_PG": str(max(1, min(slots, record.planned_trials)))} if slots else {}


@contextlib.contextmanager
def _stop_on_signals() -> Iterator[list[int]]:
    """SIGINT and SIGTERM ask Tune to stop: Tune's handler for SIGUSR1 (installed while it fits, like
    its own Ctrl-C handler, which is turned off so that SIGTERM gets the same treatment) ends the
    loop after saving the experiment state. The signals received are listed; a second one, or one
    before Tune runs, raises ``KeyboardInterrupt`` at once."""
    received: list[int] = []

    def stop(sig: int, frame) -> None:
        tune_listens = signal.getsignal(signal.SIGUSR1) not in (signal.SIG_DFL, signal.SIG_IGN, None)
        if received or not tune_listens:
            raise KeyboardInterrupt
        received.append(sig)
        os.kill(os.getpid(), signal.SIGUSR1)

    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    for s in previous:
        signal.signal(s, stop)
    try:
        yield received
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


@contextlib.contextmanager
def _without_tunes_resume_hint() -> Iterator[None]:
    """Tune ends an interrupted run with "Resume experiment with: Tuner.restore(path=...,
    trainable=...)", which is not how this tool resumes; the summary prints the command that does."""
    def drop(record: logging.LogRecord) -> bool:
        return "Tuner.restore(" not in record.getMessage()

    log = logging.getLogger("ray.tune.tune")
    log.addFilter(drop)
    try:
        yield
    finally:
        log.removeFilter(drop)


def _write_data_lists(exp_dir: Path, config: Config) -> None:
    """Write into the experiment what it trains and validates on beyond the config: the training masks
    the label audit found mirrored (trained as ``data.mirrored`` says) and their contact sheet, and, for
    data without a validation split, the held-out training images, with the config pointed at that list so every
    trial, a retrain and tta validate on the same pairs."""
    from trainable.audit import audit
    from trainable.folders import has_split
    from trainable.pictures import write_mirrored
    from trainable.scan import scan_split
    from trainable.sources import data_root
    from trainable.splits import holdout_names

    root = data_root(config.data)
    train = scan_split(root, "train", cache_dir=config.data.cache_dir)
    mirrored = audit("training", train.masks or [], train.orientations).mirrored
    if mirrored:
        with replacing(exp_dir / MIRRORED_FILE) as tmp:
            tmp.write_text(f"# data.mirrored={config.data.mirrored}\n" + "\n".join(mirrored) + "\n")
        with replacing(exp_dir / MIRRORED_SHEET) as tmp:
            write_mirrored(train.images, train.masks, train.orientations, tmp)
        print(f"mirrored masks: {uri_of(exp_dir / MIRRORED_SHEET) or exp_dir / MIRRORED_SHEET} (each over its image, "
              f"left/right classes marked) and {MIRRORED_FILE}")
    if config.data.holdout or has_split(root, "val"):
        return
    names = holdout_names(train.images, config.data.val_fraction)
    with replacing(exp_dir / HOLDOUT_FILE) as tmp:
        tmp.write_text("\n".join(names) + "\n")
    config.data.holdout = str(exp_dir / HOLDOUT_FILE)


def settle(results, exp_dir: Path, record: ExperimentRecord) -> None:
    """Close the books after a finished run: a trial the driver started but never recorded (it was
    killed in between) is moved to ``orphaned/`` and failed in the Optuna study, so every trial ends
    once. (Not after an interrupted run: its running trials continue on ``resume``.)"""
    known = {Path(r.path).name for r in results if r.path}
    for d in trial_dirs(exp_dir):
        if d.name not in known:
            (exp_dir / ORPHANED_DIR).mkdir(exist_ok=True)
            d.rename(exp_dir / ORPHANED_DIR / d.name)
            if uri_of(exp_dir):
                move(f"{uri_of(exp_dir)}/{d.name}", f"{uri_of(exp_dir)}/{ORPHANED_DIR}/{d.name}")
            print(f"note: {d.name} was started before the driver stopped but never recorded; moved to "
                  f"{ORPHANED_DIR}/")
    if record.has_study:
        import optuna

        study = optuna.load_study(study_name=record.name, storage=journal_storage(exp_dir / JOURNAL_FILE))
        for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
            study.tell(t.number, state=optuna.trial.TrialState.FAIL)
