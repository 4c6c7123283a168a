"""``launch.py`` killed with SIGKILL at chosen or random moments (while a trial starts, mid-epoch,
while a checkpoint is being written), then resumed: every trial ends exactly once, no
finished trial is lost or rerun, and no checkpoint that fails to load is left or used."""

from __future__ import annotations

import itertools
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from optuna.trial import TrialState
from ray import cloudpickle

from analysis import load_experiment
from search_spaces.driver.storage import storage_filesystem
from tests.reliability.harness import load_study, result_rows
from trainable.checkpoints import read_checkpoint
from trainable.layout import CHECKPOINT_FILE, TEMP_MARK

ROOT = Path(__file__).resolve().parents[2]
NUM_SAMPLES = 4
SEARCH = ["--num-samples", str(NUM_SAMPLES), "--max-epochs", "3", "--grace-period", "1", "--reduction-factor", "2",
          "--max-concurrent", "2", "--set", "train.batch_size=4", "--set", "model.decoder_width=32",
          "--set", "loss.lovasz=0.5"]
WAIT_S = 400  # for a moment to come, on a slow shared machine


class Driver:
    """One ``python launch.py`` process in its own session, its output in a log file.

    The workers' temporary folder is ``tmpdir`` (Ray's own session files stay in the usual place), so
    a checkpoint being written shows up there under a temporary name (``layout.TEMP_MARK``).
    """

    def __init__(self, args: list[str], tmpdir: Path, log: Path):
        env = {**os.environ, "RAY_AUTH_MODE": "disabled", "PYTHONUNBUFFERED": "1", "TMPDIR": str(tmpdir),
               "RAY_TMPDIR": os.environ.get("RAY_TMPDIR", "/tmp")}
        self.log = log
        with open(log, "w") as out:
            self.proc = subprocess.Popen([sys.executable, "launch.py", *args], cwd=ROOT, env=env, stdout=out,
                                         stderr=subprocess.STDOUT, start_new_session=True)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL the driver alone, as a crash or ``kill -9`` would; then, after a grace period in
        which the Ray processes it started may notice, remove whatever of its session is left so
        that no stale worker writes into the experiment during the resume."""
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        deadline = time.time() + 15
        while time.time() < deadline and _session_alive(self.proc.pid):
            time.sleep(0.5)
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def wait(self, timeout: float = 900) -> int:
        try:
            return self.proc.wait(timeout=timeout)
        finally:
            if self.proc.poll() is None:
                os.killpg(self.proc.pid, signal.SIGKILL)


def _session_alive(sid: int) -> bool:
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                if os.getsid(int(pid)) == sid:
                    return True
            except (ProcessLookupError, PermissionError):
                continue
    return False


# ---- the moments to kill at: predicates over the experiment folder, the workers' temp folder and
# the trial folders there were when this run started ----

Moment = Callable[[Path, Path, set[str]], bool]


def _rows(exp: Path) -> dict[str, list[dict]]:
    return {d.name: _complete_rows(d) for d in exp.glob("trial_*")}


def _complete_rows(trial_dir: Path) -> list[dict]:
    try:
        return result_rows(trial_dir)
    except ValueError:  # a line being written
        return []


def trial_starting(exp: Path, tmp: Path, seen: set[str]) -> bool:
    """A trial folder that was not there when this run started, with nothing reported yet."""
    return any(name not in seen and not rows for name, rows in _rows(exp).items())


def mid_epoch(exp: Path, tmp: Path, seen: set[str]) -> bool:
    """A trial reported an epoch at least half an epoch ago and is training the next one."""
    now = time.time()
    for rows in _rows(exp).values():
        if rows and not rows[-1].get("done") and rows[-1]["epoch"] < 3:
            last = rows[-1]
            if now - last["timestamp"] >= 0.5 * last["time_this_iter_s"] and not _writing_checkpoint(tmp):
                return True
    return False


def checkpoint_write(exp: Path, tmp: Path, seen: set[str]) -> bool:
    """A worker is writing a checkpoint (its temporary file exists), after some trial reported an epoch."""
    return any(_rows(exp).values()) and _writing_checkpoint(tmp)


class AfterATrialEnded:
    """``moment``, once some trial has ended in the Optuna study (so that a kill can lose or rerun it)."""

    def __init__(self, moment: Moment):
        self.moment, self.ended, self.checked = moment, False, 0.0

    def __call__(self, exp: Path, tmp: Path, seen: set[str]) -> bool:
        if not self.ended and time.time() - self.checked > 0.5:  # reading the study takes a while
            self.ended, self.checked = bool(_finished(exp)), time.time()
        return self.ended and self.moment(exp, tmp, seen)


def _writing_checkpoint(tmp: Path) -> bool:
    """A temporary checkpoint file in one of ``tmp``'s folders. Other processes' temporary folders
    come and go there (every import of timm imports wandb, which makes one and removes it at exit),
    so a folder that vanishes between listing and reading is skipped rather than raised."""
    for folder in os.scandir(tmp) if tmp.is_dir() else ():
        try:
            if folder.is_dir() and any(name.startswith(TEMP_MARK) and name.endswith(f"-{CHECKPOINT_FILE}")
                                       for name in os.listdir(folder.path)):
                return True
        except FileNotFoundError:
            continue
    return False


def _snapshots(exp: Path) -> set[str]:
    """The experiment states there are; each driver's search names its own by its start time."""
    return {p.name for p in exp.glob("experiment_state-*.json")} if exp.is_dir() else set()


def wait_for(driver: Driver, moment: Moment | float, exp: Path, tmp: Path, seen: set[str],
             snapshots: set[str]) -> None:
    """Until the moment comes (or, for a number, that many seconds after this driver's search runs:
    once it has published an experiment state of its own, i.e. one not in ``snapshots``)."""
    deadline = time.time() + WAIT_S
    since = None
    while time.time() < deadline:
        assert driver.proc.poll() is None, f"the search ended before the moment came:\n{driver.output()[-3000:]}"
        if (exp / "experiment.json").is_file():
            if isinstance(moment, float):
                since = since or (time.time() if _snapshots(exp) - snapshots else None)
                if since and time.time() - since >= moment:
                    return
            elif moment(exp, tmp, seen):
                return
        time.sleep(0.002)
    raise AssertionError(f"the moment did not come within {WAIT_S} s")


# ---- what must hold after the final resume ----

def _finished(exp: Path) -> dict[str, TrialState]:
    """Tune trial folder -> state, for the trials the Optuna study has ended."""
    try:
        trials = load_study(exp).trials
    except (KeyError, ValueError, OSError):
        return {}
    return {f"trial_{t.user_attrs['tune_trial_id']}": t.state for t in trials
            if t.state.is_finished() and "tune_trial_id" in t.user_attrs}


def check_records_whole(exp: Path) -> None:
    """Whatever the moment of the kill, the files the search keeps in the experiment are whole."""
    for state in exp.glob("experiment_state-*.json"):
        json.loads(state.read_text())  # a truncated state file would make --resume fail outright
    for state in [*exp.glob("search_gen_state-*.json"), *exp.glob("searcher-state-*.pkl")]:
        cloudpickle.loads(state.read_bytes())  # Tune's own files, pickles whatever their names
    for trial_dir in exp.glob("trial_*"):
        result_rows(trial_dir)  # every line complete
        for checkpoint in trial_dir.glob(f"checkpoint_*/{CHECKPOINT_FILE}"):
            read_checkpoint(checkpoint)


def check_resumed_search(exp: Path, finished_before: dict[str, list[dict]]) -> None:
    study = load_study(exp)
    assert all(t.state.is_finished() for t in study.trials)
    ended = [t for t in study.trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert len(ended) == NUM_SAMPLES
    # every Tune trial ended once in the study; a trial only ever told FAIL was never recorded by the
    # driver (killed right after sampling it) and settled as orphaned
    ids = [t.user_attrs.get("tune_trial_id") for t in ended]
    assert len(set(ids)) == len(ids)
    for t in study.trials:
        if t.state == TrialState.FAIL:
            assert t.user_attrs.get("tune_trial_id") not in ids
    after = _rows(exp)
    assert set(after) == {f"trial_{i}" for i in ids}
    for name, rows in after.items():
        assert [r["training_iteration"] for r in rows] == list(range(1, len(rows) + 1)), name  # no epoch twice
        assert [r["epoch"] for r in rows] == list(range(1, len(rows) + 1)), name
        assert rows, name
        assert not (exp / name / "error.txt").exists(), name  # no trial failed, e.g. on a bad checkpoint
    for name, rows in finished_before.items():
        assert after.get(name) == rows, name  # a finished trial is neither lost nor rerun
    # the analysis of the resumed experiment: every epoch of every trial, once (learning curves unbroken)
    read = load_experiment(exp)
    for name, rows in after.items():
        assert read.epochs.loc[read.epochs["trial"] == name, "epoch"].tolist() == list(range(1, len(rows) + 1)), name
    checkpoints = list(exp.glob(f"trial_*/checkpoint_*/{CHECKPOINT_FILE}"))
    assert checkpoints
    for path in checkpoints:
        read_checkpoint(path)  # every checkpoint left behind loads
    assert not list(exp.rglob(f"{TEMP_MARK}*"))


def _search_args(tiny_master: Path, tmp_path: Path) -> list[str]:
    return ["--space", "augmentation", "--data", str(tiny_master), "--storage-path", str(tmp_path), "--name", "kill",
            *SEARCH]


def run_with_kills(tiny_master: Path, tmp_path: Path, moments: list[Moment | float]
                   ) -> tuple[Path, dict[str, list[dict]]]:
    """Start the search, kill the driver at each moment in turn (resuming after each), then resume
    to the end; returns the experiment and the rows of the trials the study had ended at the kills."""
    exp, tmp = tmp_path / "kill", tmp_path / "tmp"
    tmp.mkdir()
    args = _search_args(tiny_master, tmp_path)
    finished_before: dict[str, list[dict]] = {}
    for i, moment in enumerate(moments):
        seen = set(_rows(exp)) if exp.is_dir() else set()
        snapshots = _snapshots(exp)
        driver = Driver(args if i == 0 else ["resume", str(exp)], tmp, tmp_path / f"run{i}.log")
        wait_for(driver, moment, exp, tmp, seen, snapshots)
        driver.kill()
        check_records_whole(exp)
        rows = _rows(exp)
        finished_before.update({name: rows[name] for name in _finished(exp) if name in rows})
    driver = Driver(["resume", str(exp)], tmp, tmp_path / "final.log")
    code = driver.wait()
    assert code == 0, driver.output()[-4000:]
    assert "best trial" in driver.output()
    return exp, finished_before


def test_driver_killed_while_writing_a_checkpoint_resumes_cleanly(tiny_master, tmp_path):
    exp, finished_before = run_with_kills(tiny_master, tmp_path, [AfterATrialEnded(checkpoint_write)])
    assert finished_before  # checked to be kept as they were
    check_resumed_search(exp, finished_before)


@pytest.mark.slow
def test_driver_killed_at_trial_start_mid_epoch_and_checkpoint_write(tiny_master, tmp_path):
    exp, finished_before = run_with_kills(tiny_master, tmp_path,
                                          [trial_starting, mid_epoch, AfterATrialEnded(checkpoint_write)])
    assert finished_before  # checked to be kept as they were
    check_resumed_search(exp, finished_before)


@pytest.fixture(scope="module")
def search_seconds(tiny_master, tmp_path_factory) -> float:
    """How long the search runs uninterrupted on this machine now: from its first experiment state to
    the driver's exit."""
    tmp_path = tmp_path_factory.mktemp("uninterrupted")
    exp = tmp_path / "kill"
    (tmp_path / "tmp").mkdir()
    driver = Driver(_search_args(tiny_master, tmp_path), tmp_path / "tmp", tmp_path / "run.log")
    deadline = time.time() + WAIT_S
    while not _snapshots(exp) and driver.proc.poll() is None and time.time() < deadline:
        time.sleep(0.002)
    started = time.time()
    code = driver.wait()
    assert code == 0 and _snapshots(exp), driver.output()[-4000:]
    return time.time() - started


# one draw per run, a new one each day: over the runs the moments cover the search's whole course. A
# failure prints its seed; KILL_SEED=N repeats that draw.
KILL_SEED = int(os.environ.get("KILL_SEED", time.strftime("%Y%j")))


@pytest.mark.slow
def test_driver_killed_at_random_moments(tiny_master, tmp_path, search_seconds):
    # three moments of the search's own course, drawn within its first three quarters: each run is
    # killed that many seconds after its search runs (a resumed one after it restored the experiment).
    # A resume restarts its trials and loses their unsaved work, so the three runs together get less
    # far than an uninterrupted search in the same time: every kill lands while the search runs.
    rng = random.Random(KILL_SEED)
    moments = sorted(rng.uniform(0.0, 0.75 * search_seconds) for _ in range(3))
    delays = [b - a for a, b in zip([0.0, *moments], moments)]
    print(f"KILL_SEED={KILL_SEED}; uninterrupted: {search_seconds:.1f} s; kills {[round(d, 1) for d in delays]} s "
          f"into the runs")
    exp, finished_before = run_with_kills(tiny_master, tmp_path, delays)
    check_resumed_search(exp, finished_before)


SNAPSHOT = ("experiment_state-{}.json", "search_gen_state-{}.json", "searcher-state-{}.pkl")


@pytest.mark.parametrize("order", list(itertools.permutations(range(3))))
def test_a_snapshot_is_published_whole_whatever_order_its_files_are_uploaded_in(tmp_path, order):
    # what a driver killed between two of its snapshot's uploads leaves: the previous snapshot, whole
    from ray.tune.search import Searcher, SearchGenerator

    fs = storage_filesystem(tmp_path, (SearchGenerator.CKPT_FILE_TMPL, Searcher.CKPT_FILE_TMPL))
    names = [t.format("S") for t in SNAPSHOT]

    def upload(version: str, files: list[int]) -> None:
        for i in files:
            with fs.open_output_stream(str(tmp_path / names[i])) as f:
                f.write(version.encode())

    def visible() -> list[str | None]:
        return [(tmp_path / n).read_text() if (tmp_path / n).exists() else None for n in names]

    for step in range(3):
        upload("1", [order[step]])
        assert visible() == ([None] * 3 if step < 2 else ["1"] * 3)
    upload("2", list(order[:2]))  # killed before the third file of the next snapshot
    assert visible() == ["1"] * 3
    upload("3", list(order))  # the next driver's upload supersedes the half-written one
    assert visible() == ["3"] * 3
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(names)  # no file held back is left
    upload("4", [0])
    with fs.open_output_stream(str(tmp_path / "trial_x" / "result.json")) as f:  # any other file: at once
        f.write(b"{}")
    assert (tmp_path / "trial_x" / "result.json").read_text() == "{}" and visible() == ["3"] * 3
    upload("[5", [0])  # an experiment state Ray was rewriting while the upload read it: truncated
    upload("5", [1, 2])
    assert visible() == ["3"] * 3  # that snapshot is dropped whole
    upload("6", list(order))
    assert visible() == ["6"] * 3 and sorted(p.name for p in tmp_path.iterdir()) == sorted([*names, "trial_x"])


def test_rays_own_staging_temporaries_never_reach_the_experiment(tmp_path):
    # Ray saves a search algorithm's state as ".<uuid>-tmp-<name>" and renames it; an upload that lists
    # the staging folder in between would copy that file into the experiment, where nothing removes it
    import uuid

    fs = storage_filesystem(tmp_path)
    temporary = f".{uuid.uuid4()}-tmp-basic-variant-state-S.json"
    for name in (temporary, ".hidden-tmp-file.json"):
        with fs.open_output_stream(str(tmp_path / name)) as f:
            f.write(b"{}")
    assert [p.name for p in tmp_path.iterdir()] == [".hidden-tmp-file.json"]  # only Ray's own name is dropped
