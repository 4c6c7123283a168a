"""Real full disks (small tmpfs mounts; root only, else skipped): a full disk while a checkpoint is
written fails that trial cleanly, not the search, and a storage disk filling up fails the trials
whose checkpoints do not fit while the search, and its records, stay whole. (Checkpoint retention
and its size bound are measured in test_trial_faults.py, on the fault-injected search.)"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from optuna.trial import TrialState

from analysis.summary import search_summary
from tests.reliability.harness import (
    FaultyTrainable,
    epochs_per_attempt,
    load_study,
    local_ray,
    new_search,
    result_rows,
    roles,
    run_search,
)
from trainable.checkpoints import read_checkpoint
from trainable.layout import CHECKPOINT_FILE

MAX_FAILURES = 2  # FailureConfig(max_failures=2) of the experiment's Tuner


@pytest.fixture(scope="module")
def ray_session(tmp_path_factory):
    with local_ray(tmp_path_factory.getbasetemp() / "cache"):
        yield


def _mount_tmpfs(mount: Path, size: str) -> None:
    mount.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount)], capture_output=True)
    if done.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")


@pytest.fixture
def full_disk(tmp_path) -> Path:
    """A real file system (tmpfs) of 1 MiB: too small for one checkpoint."""
    mount = tmp_path / "full"
    _mount_tmpfs(mount, "1m")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=True)


@pytest.fixture
def small_storage(tmp_path) -> Path:
    """A real file system (tmpfs) with room for a few checkpoints of the tiny model, not for a search."""
    mount = tmp_path / "storage"
    _mount_tmpfs(mount, "100m")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=True)


@pytest.mark.slow
def test_a_full_disk_fails_the_trial_writing_a_checkpoint_not_the_search(ray_session, tiny_master, tmp_path,
                                                                          full_disk, capsys):
    work = tmp_path / "faults"
    work.mkdir()
    exp_dir, record = new_search(tmp_path, tiny_master, "--num-samples", "2")
    results = run_search(exp_dir, record, FaultyTrainable(str(work), ("full-disk",), full_disk=str(full_disk)))
    out = "\n".join(search_summary(exp_dir))

    trial_of = {role: trial_id for trial_id, role in roles(work).items()}
    full, ok = f"trial_{trial_of['full-disk']}", f"trial_{trial_of['ok']}"
    # the first checkpoint never fits: every attempt fails at it, up to the retry limit
    assert epochs_per_attempt(work, trial_of["full-disk"]) == [[0]] * (1 + MAX_FAILURES)
    errors = {Path(r.path).name: r.error for r in results}
    assert errors[ok] is None and errors[full] is not None
    assert "No space left on device" in str(errors[full])
    assert not list(full_disk.iterdir())  # nothing half-written left on the full disk
    assert not list((exp_dir / full).glob("checkpoint_*"))
    assert [r["epoch"] for r in result_rows(exp_dir / ok)] == [1, 2, 3]
    states = {t.user_attrs["tune_trial_id"]: t.state for t in load_study(exp_dir).trials}
    assert states == {trial_of["ok"]: TrialState.COMPLETE, trial_of["full-disk"]: TrialState.FAIL}
    assert f"best trial      {ok}" in out


@pytest.mark.slow
def test_a_storage_disk_filling_up_fails_trials_not_the_search_or_its_records(ray_session, tiny_master,
                                                                              small_storage, capsys):
    exp_dir, record = new_search(small_storage, tiny_master, "--num-samples", "3")
    results = run_search(exp_dir, record)
    out = "\n".join(search_summary(exp_dir))

    errors = {Path(r.path).name: str(r.error) for r in results if r.error}
    completed = [r for r in results if not r.error and r.metrics.get("epoch") == 3]
    assert errors and completed, out  # the disk stopped some trials, and the search went on with the rest
    for error in errors.values():
        assert "No space left on device for the checkpoint" in error and "free space there" in error
    assert shutil.disk_usage(small_storage).free >= 8 * 2**20  # the reserve kept the disk from filling
    # the search's own records are whole: Tune's state, the Optuna journal, results, checkpoints
    for state in exp_dir.glob("experiment_state-*.json"):
        json.loads(state.read_text())
    study = load_study(exp_dir)
    assert len(study.trials) == 3 and all(t.state.is_finished() for t in study.trials)
    assert sum(t.state == TrialState.FAIL for t in study.trials) == len(errors)
    for d in exp_dir.glob("trial_*"):
        result_rows(d)
        for checkpoint in d.glob(f"checkpoint_*/{CHECKPOINT_FILE}"):
            read_checkpoint(checkpoint)
    assert "best trial" in out

    # the records are whole enough to resume from; every trial already ended, once, and stays so
    rows = {d.name: result_rows(d) for d in exp_dir.glob("trial_*")}
    states = [t.state for t in study.trials]
    subprocess.run(["mount", "-o", "remount,size=400m", str(small_storage)], check=True)
    run_search(exp_dir, record, restore=True)
    assert [t.state for t in load_study(exp_dir).trials] == states
    assert {d.name: result_rows(d) for d in exp_dir.glob("trial_*")} == rows
