"""The Ray Tune function trainable: a plain config dict in, one report per epoch out.

    tuner = tune.Tuner(train_segmentation, param_space={"train": {"epochs": 2}, ...})

Each report carries the epoch's metrics and a checkpoint (weights, optimiser, schedule, epoch).
A trial restored from a checkpoint (a retry after a failure, a resumed experiment, or a paused
trial) continues with the next epoch, with the same data order it would have had.

A trial whose training loss becomes NaN or infinite ends at once, without a retry (the same
config and seed would diverge again): its last report carries ``stop_reason`` and NaN for every
metric a search can rank by (so the searcher records a failure whatever ``--metric`` is, and no
best-trial pick can choose it), and ``stopped.txt`` in the trial folder says why.
"""

from __future__ import annotations

import errno
import math
import os
import shutil
import sys
import tempfile
from pathlib import Path

import ray
import torch
from ray import tune

from trainable.checkpoints import load_checkpoint, save_checkpoint
from trainable.config import Config
from trainable.errors import UserError
from trainable.layout import REFUSED_FILE, SCHEDULE_FILE, STOPPED_FILE, trial_dir_name
from trainable.loop import NonFiniteLossError
from trainable.metrics import SEARCH_METRICS
from trainable.run import Run, build_run, run_epoch
from trainable.schedule import continue_schedule, read_schedule, schedule_text, start_schedule

# a checkpoint is written to the storage only while this much stays free after it: room for as many
# more checkpoints (other trials writing theirs at the same time) and for the search's own records
CHECKPOINTS_IN_FLIGHT = 3
STORAGE_RESERVE_BYTES = 16 * 2**20
LOCAL_FILESYSTEMS = ("local", "py::atomic-local")  # pyarrow's, and search_spaces.driver.storage's whole-file writes

__all__ = ["diverged_report", "train_segmentation", "write_trial_file"]


def train_segmentation(config: dict) -> None:
    """Train and validate the configured model, reporting once per epoch to Ray Tune."""
    try:
        cfg = Config.from_dict(config)
        run = build_run(cfg)
    except UserError as e:
        # a configuration the rules refuse (e.g. over the parameter budget): retrying cannot help,
        # so the trial ends without a result and the searcher records it as infeasible
        print(f"trial refused: {e}", file=sys.stderr)
        write_trial_file(REFUSED_FILE, f"{e}\n")
        return

    start, trial = 0, trial_dir_name(tune.get_context().get_trial_id())
    schedule = start_schedule(cfg, trial)
    checkpoint = tune.get_checkpoint()
    if checkpoint:
        # its own (a resume), or another trial's that a population search gave it with new settings
        with checkpoint.as_directory() as directory:
            start = load_checkpoint(run, directory)
            saved = read_schedule(directory) or {}
        if start >= cfg.train.epochs:
            return  # a population search exploits at its last boundary too: nothing is left to train
        schedule = continue_schedule(saved.get("schedule"), saved.get("trial"), trial, start, cfg)
    record = schedule_text(trial, cfg, schedule)
    write_trial_file(SCHEDULE_FILE, record)

    node = ray.get_runtime_context().get_node_id()
    threads = torch.get_num_threads()
    gpus = ",".join(map(str, ray.get_gpu_ids()))  # Ray's choice, which it also put in CUDA_VISIBLE_DEVICES
    if gpus and run.device.type != "cuda":  # e.g. GPUs declared to Ray (`ray start --num-gpus`) on a machine without
        print(f"note: Ray gave this trial GPU {gpus} but torch sees no CUDA device there "
              f"(CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', '')}); it trains on the CPU",
              file=sys.stderr)
    for epoch in range(start, cfg.train.epochs):
        try:
            metrics = run_epoch(run, epoch)
        except NonFiniteLossError as e:
            _stop_diverged(epoch + 1, e, node)
            return
        metrics["node"] = node  # which machine of a cluster ran it
        metrics["threads"] = threads  # what a retrain needs to repeat the trial's figures on the CPU
        metrics["device"], metrics["gpus"] = str(run.device), gpus  # what it trained on, and the GPUs Ray gave it
        with tempfile.TemporaryDirectory() as directory:
            _save_checkpoint(run, epoch + 1, directory, metrics)
            (Path(directory) / SCHEDULE_FILE).write_text(record)  # what a trial exploiting this one inherits
            _check_storage_room(directory, epoch + 1)
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(directory))


def write_trial_file(name: str, text: str) -> None:
    """Write ``name`` into this trial's folder in the experiment's storage, where the analysis reads it.

    Not under ``get_trial_dir()``: that is a local staging folder, which only the head node syncs to
    the storage, and in an actor reused from an earlier trial a working folder that is not synced.
    """
    storage = tune.get_context().get_storage()
    storage.storage_filesystem.create_dir(storage.trial_fs_path)
    with storage.storage_filesystem.open_output_stream(f"{storage.trial_fs_path}/{name}") as f:
        f.write(text.encode())


def _save_checkpoint(run: Run, epoch: int, directory: str, metrics: dict) -> None:
    """``save_checkpoint``, with a full disk named as such (torch reports one as an obscure
    ``RuntimeError``); the trial then fails and is retried from its last checkpoint."""
    try:
        save_checkpoint(run, epoch, directory, metrics)
    except (OSError, RuntimeError) as e:
        free = shutil.disk_usage(directory).free
        tensors = [*run.model.state_dict().values(),
                   *(t for state in run.optimizer.state_dict()["state"].values() for t in state.values())]
        needed = sum(t.numel() * t.element_size() for t in tensors if isinstance(t, torch.Tensor))
        if getattr(e, "errno", None) != errno.ENOSPC and free >= needed:
            raise
        raise OSError(errno.ENOSPC, f"No space left on device for the checkpoint of epoch {epoch} in {directory} "
                      f"(about {needed / 1e6:.1f} MB needed, {free / 1e6:.1f} MB free); free space there or set "
                      f"TMPDIR to a folder on a larger disk") from e


def _check_storage_room(directory: str, epoch: int) -> None:
    """Refuse a checkpoint that the experiment's storage disk has no room for, before Ray copies it.

    A storage disk that fills up during Ray's copy also truncates what the search itself writes there
    (Tune's experiment state, the Optuna journal, result files), ending the search with an experiment
    that no longer resumes. Refused here, only this trial fails (Ray retries it from its last
    checkpoint while retries are left), and the search keeps the room to finish and record it.
    """
    storage = tune.get_context().get_storage()
    if storage.storage_filesystem.type_name not in LOCAL_FILESYSTEMS:
        return  # an object store: no disk of ours to fill
    needed = sum(f.stat().st_size for f in Path(directory).rglob("*") if f.is_file())
    target = Path(storage.trial_fs_path)
    while not target.exists() and target != target.parent:
        target = target.parent
    free = shutil.disk_usage(target).free
    if free < CHECKPOINTS_IN_FLIGHT * needed + STORAGE_RESERVE_BYTES:
        raise OSError(errno.ENOSPC, f"No space left on device for the checkpoint of epoch {epoch} under "
                      f"{storage.experiment_fs_path} ({free / 1e6:.0f} MB free; a checkpoint takes "
                      f"{needed / 1e6:.1f} MB, and {STORAGE_RESERVE_BYTES / 1e6:.0f} MB stay free for the search's "
                      f"own records); free space there: the trial is retried from its last checkpoint while "
                      f"retries are left")


def _stop_diverged(epoch: int, error: NonFiniteLossError, node: str) -> None:
    """End a trial whose loss diverged: the reason in ``stopped.txt`` and in a last report
    (``diverged_report``)."""
    report = diverged_report(epoch, error, node)
    print(f"trial stopped: {report['stop_reason']}", file=sys.stderr)
    write_trial_file(STOPPED_FILE, f"{report['stop_reason']}\n")
    tune.report(report)


def diverged_report(epoch: int, error: NonFiniteLossError, node: str) -> dict:
    """The last report of a trial whose loss diverged at ``epoch``: NaN for every searchable metric,
    which the searcher records as a failure and no best-trial pick can choose."""
    return {"epoch": epoch, **dict.fromkeys(SEARCH_METRICS, math.nan), "train_loss": error.loss,
            "stop_reason": f"diverged at epoch {epoch}: {error}", "node": node}
