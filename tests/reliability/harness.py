"""What the fault tests share: a real experiment (the record launch.py builds from its flags, the
real Tuner with its ASHA + Optuna searcher, retries and checkpoint retention) run around the real
trainable, with faults injected inside the Ray workers, and readers of what the experiment left on
disk.

Faults are chosen per trial by the order in which trials first start (``FaultyTrainable.plan``);
every attempt of a trial (first run and retries) appends to ``<workdir>/<trial_id>.jsonl`` so a
test can see which epochs each attempt trained.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import signal
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import optuna
import pytest

from search_spaces.driver import REUSE_ON_OWN_INSTANCE, ExperimentRecord, create_experiment, journal_storage
from search_spaces.driver import run_search as run_driver
from trainable.layout import JOURNAL_FILE

# a search over the tiny synthetic set that ASHA never cuts short (grace period = max epochs), so
# every trial that does not fail trains all its epochs
TINY_FLAGS = ["--max-epochs", "3", "--grace-period", "3", "--reduction-factor", "2",
              "--set", "train.batch_size=4", "--set", "model.decoder_width=32", "--set", "loss.lovasz=0.5"]

@contextlib.contextmanager
def local_ray(cache: Path) -> Iterator[None]:
    """A Ray instance of this process for the test, whose workers keep derived data under ``cache``
    (the workers inherit the environment Ray starts with, not the one a test sets later). Always a new
    instance: ``ray.init()`` would join a cluster that ``ray start`` or a ``cluster_utils.Cluster``
    (which records its address as ``ray start`` does) has running on this machine."""
    import ray

    with pytest.MonkeyPatch.context() as env:
        env.setenv("FACESEARCH_CACHE", str(cache))
        ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
        try:
            yield
        finally:
            ray.shutdown()


def new_search(storage: Path, data: Path, *flags: str, name: str = "exp") -> tuple[Path, ExperimentRecord]:
    """A new augmentation-space experiment as ``launch.py search`` builds it from these flags (its
    record is written when the search runs)."""
    import launch

    _, args = launch.parse(["search", "--space", "augmentation", "--data", str(data), "--storage-path", str(storage),
                            "--name", name, *TINY_FLAGS, *flags])
    record = launch.search_record(args)
    return create_experiment(record, args.storage_path), record


def run_search(exp_dir: Path, record: ExperimentRecord, trainable_fn=None, restore: bool = False):
    """Fit the experiment's Tuner in this process and settle it as ``launch.py`` does on the Ray
    instance it starts (``local_ray``): ended trials' processes are reused."""
    return run_driver(exp_dir, record, restore, trainable_fn=trainable_fn, ray_settings=REUSE_ON_OWN_INSTANCE).results


@dataclass(frozen=True)
class FaultyTrainable:
    """The real trainable, with the fault ``plan[i]`` injected into the i-th trial to start.

    ``raise-once``: an exception at the second epoch, first attempt only. ``kill-once``: SIGKILL of
    the worker process after one batch of the second epoch, first attempt only. ``nan``: a first
    epoch with an unbeatable val mIoU (99), then a NaN loss in the second. ``always-raise``: an
    exception at the first epoch of every attempt. ``enospc-once`` / ``enospc-always``: the second
    epoch's checkpoint write hits a full disk (on the first attempt / on every attempt).
    ``full-disk``: checkpoints are written (as always, through a temporary folder) on ``full_disk``,
    a real file system too small to hold one. ``refused``: a model over a tiny parameter budget.
    """

    workdir: str
    plan: tuple[str, ...]
    full_disk: str = ""

    def __call__(self, config: dict) -> None:
        import torch
        from ray import tune

        import trainable.ray_trainable as rt

        trial_id = tune.get_context().get_trial_id()
        role = self._role(trial_id)
        self._log(trial_id, {"event": "start", "role": role, "pid": os.getpid()})
        first_attempt = self._first_attempt(trial_id)
        real_run_epoch, real_save = rt.run_epoch, torch.save

        def run_epoch(run, epoch: int) -> dict:
            self._log(trial_id, {"event": "epoch", "epoch": epoch})
            if role == "always-raise" or (role == "raise-once" and epoch == 1 and first_attempt):
                raise RuntimeError(f"injected failure in epoch {epoch}")
            if role == "kill-once" and epoch == 1 and first_attempt:
                run.train_loader = _killing_after_one_batch(run.train_loader)
            if role == "nan" and epoch == 1:
                real_criterion = run.criterion
                run.criterion = lambda out, masks: real_criterion(out, masks) * float("nan")
            metrics = real_run_epoch(run, epoch)
            if role == "nan" and epoch == 0:
                metrics["val_miou"] = 99.0  # would be the best of the search if a diverged trial could win
            if role.startswith("enospc") and epoch == 1 and (role == "enospc-always" or first_attempt):
                torch.save = _full_disk  # the write of this epoch's checkpoint hits a full disk
            return metrics

        rt.run_epoch = run_epoch
        if role == "refused":
            config = {**config, "model": {**config["model"], "max_params": 1000}}
        if role == "full-disk":
            tempfile.tempdir = self.full_disk
        try:
            rt.train_segmentation(config)
        finally:
            rt.run_epoch, torch.save, tempfile.tempdir = real_run_epoch, real_save, None

    def _role(self, trial_id: str) -> str:
        mine = Path(self.workdir) / f"{trial_id}.role"
        if mine.exists():
            return mine.read_text()
        role = "ok"
        for i, planned in enumerate(self.plan):
            try:  # claim the first free slot: the i-th trial to start gets plan[i]
                os.close(os.open(Path(self.workdir) / f"slot-{i}", os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            except FileExistsError:
                continue
            role = planned
            break
        mine.write_text(role)
        return role

    def _first_attempt(self, trial_id: str) -> bool:
        return sum(e["event"] == "start" for e in attempts_log(Path(self.workdir), trial_id)) == 1

    def _log(self, trial_id: str, entry: dict) -> None:
        with open(Path(self.workdir) / f"{trial_id}.jsonl", "a") as f:
            f.write(json.dumps({**entry, "t": time.time()}) + "\n")


def _killing_after_one_batch(loader):
    """Yield the first batch, then kill this process: a worker that dies mid-epoch."""

    class Killing:
        def __init__(self, inner):
            self.inner = inner

        def __getattr__(self, name):  # generator, dataset, num_workers: the loader's own
            return getattr(self.inner, name)

        def __len__(self) -> int:
            return len(self.inner)

        def __iter__(self):
            for i, batch in enumerate(self.inner):
                if i == 1:
                    os.kill(os.getpid(), signal.SIGKILL)
                yield batch

    return Killing(loader)


def _full_disk(obj, f, *args, **kwargs):
    # as a real full disk does: part of the file is written, then the write fails
    with open(f, "wb") as out:
        out.write(b"\0" * 4096)
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(f))


def attempts_log(workdir: Path, trial_id: str) -> list[dict]:
    path = workdir / f"{trial_id}.jsonl"
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


def epochs_per_attempt(workdir: Path, trial_id: str) -> list[list[int]]:
    """The epochs (0-based) each attempt of a trial started, in order."""
    attempts: list[list[int]] = []
    for e in attempts_log(workdir, trial_id):
        if e["event"] == "start":
            attempts.append([])
        elif e["event"] == "epoch":
            attempts[-1].append(e["epoch"])
    return attempts


def roles(workdir: Path) -> dict[str, str]:
    """Trial id -> the fault role it was given."""
    return {p.stem: p.read_text() for p in workdir.glob("*.role")}


def load_study(exp_dir: Path) -> optuna.Study:
    return optuna.load_study(study_name=exp_dir.name, storage=journal_storage(exp_dir / JOURNAL_FILE))


def result_rows(trial_dir: Path) -> list[dict]:
    path = trial_dir / "result.json"
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []
