"""Faults inside trials of a real search (ASHA + Optuna, retries, checkpoints): an exception, a
worker killed mid-epoch and a full disk while writing a checkpoint are retried from the last
checkpoint up to the configured limit, a NaN loss ends its trial at once with the reason recorded
and never as the best, a configuration the rules refuse ends without training, and the rest of the
search carries on and finishes."""

from __future__ import annotations

import pytest
import ray
from optuna.trial import TrialState

import launch
from analysis import load_experiment, trial_summary
from tests.reliability.harness import (
    FaultyTrainable,
    epochs_per_attempt,
    load_study,
    new_search,
    result_rows,
    roles,
    run_search,
)
from trainable.build import CHECKPOINT_FILE, read_checkpoint

PLAN = ("raise-once", "kill-once", "nan", "enospc-always", "refused")  # the sixth trial runs clean
NUM_SAMPLES = len(PLAN) + 1
MAX_FAILURES = 2  # FailureConfig of the experiment's Tuner


@pytest.fixture(scope="module")
def ray_session():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


def test_faulty_trials_are_retried_or_stopped_and_the_search_finishes(ray_session, tiny_master, tmp_path, capsys):
    work = tmp_path / "faults"
    work.mkdir()
    exp_dir, meta = new_search(tmp_path, tiny_master, "--num-samples", str(NUM_SAMPLES))
    results = run_search(exp_dir, meta, FaultyTrainable(str(work), PLAN))
    launch.summarize(results, exp_dir, meta)
    out = capsys.readouterr().out

    trial_of = {role: trial_id for trial_id, role in roles(work).items()}
    assert set(trial_of) == {*PLAN, "ok"}, roles(work)
    attempts = {role: epochs_per_attempt(work, trial_id) for role, trial_id in trial_of.items()}
    rows = {role: result_rows(exp_dir / f"trial_{trial_id}") for role, trial_id in trial_of.items()}

    # an exception and a killed worker: one retry each, from the checkpoint of epoch 1 (not from the
    # start), and each epoch reported once
    assert attempts["raise-once"] == [[0, 1], [1, 2]]
    assert attempts["kill-once"] == [[0, 1], [1, 2]]
    assert attempts["ok"] == [[0, 1, 2]]
    for role in ("raise-once", "kill-once", "ok"):
        assert [r["epoch"] for r in rows[role]] == [1, 2, 3], role
        assert [r["training_iteration"] for r in rows[role]] == [1, 2, 3], role
    # a disk full at every write of the second checkpoint: 1 + max_failures attempts, each from the
    # first checkpoint, then the trial fails; what it had written stays loadable
    assert attempts["enospc-always"] == [[0, 1]] + [[1]] * MAX_FAILURES
    assert [r["epoch"] for r in rows["enospc-always"]] == [1]
    full_dir = exp_dir / f"trial_{trial_of['enospc-always']}"
    assert [read_checkpoint(c)["epoch"] for c in full_dir.glob(f"checkpoint_*/{CHECKPOINT_FILE}")] == [1]

    # a NaN loss: stopped at once, not retried, the reason recorded in the folder and the last report
    assert attempts["nan"] == [[0, 1]]
    nan_dir = exp_dir / f"trial_{trial_of['nan']}"
    reason = "diverged at epoch 2: training loss became nan"
    assert (nan_dir / "stopped.txt").read_text().startswith(reason)
    assert rows["nan"][-1]["stop_reason"].startswith(reason)

    # a refused configuration: no training, no retry, the reason in the folder
    assert attempts["refused"] == [[]]
    assert "over the budget" in (exp_dir / f"trial_{trial_of['refused']}" / "refused.txt").read_text()

    by_path = {r.path.rstrip("/").rsplit("/", 1)[-1]: r for r in results}
    assert len(by_path) == NUM_SAMPLES
    assert [name for name, r in by_path.items() if r.error] == [full_dir.name]
    assert "No space left on device" in str(by_path[full_dir.name].error)
    assert by_path[nan_dir.name].error is None  # ended cleanly, not as an error Ray would retry

    # the Optuna study: every trial ended once; the diverged one failed with its reason, never complete
    study = load_study(exp_dir)
    assert len(study.trials) == NUM_SAMPLES
    state = {t.user_attrs["tune_trial_id"]: t for t in study.trials}
    assert len(state) == NUM_SAMPLES
    assert {role: state[trial_of[role]].state for role in trial_of} == {
        "ok": TrialState.COMPLETE, "raise-once": TrialState.COMPLETE, "kill-once": TrialState.COMPLETE,
        "nan": TrialState.FAIL, "enospc-always": TrialState.FAIL, "refused": TrialState.FAIL}
    assert state[trial_of["nan"]].user_attrs["stop_reason"].startswith(reason)
    assert study.best_trial.user_attrs["tune_trial_id"] != trial_of["nan"]

    # never the best: not for Ray, not for launch.py's summary, not for the analysis
    assert rows["nan"][0]["val_miou"] == 99.0  # the best score of the search, before the loss diverged
    assert trial_of["nan"] not in results.get_best_result().path
    best_line = next(line for line in out.splitlines() if line.startswith("best trial"))
    assert trial_of["nan"] not in best_line
    assert f"note: {nan_dir.name} {reason}" in out and "1 diverged" in out
    exp = load_experiment(exp_dir)
    status = dict(zip(exp.trials["trial"], exp.trials["status"]))
    failures = dict(zip(exp.trials["trial"], exp.trials["failures"]))
    named = {role: f"trial_{trial_id}" for role, trial_id in trial_of.items()}
    assert {role: status[name] for role, name in named.items()} == {
        "ok": "completed", "raise-once": "completed", "kill-once": "completed", "nan": reason,
        "enospc-always": "errored", "refused": "refused"}
    assert {role: failures[name] for role, name in named.items()} == {
        "ok": 0, "raise-once": 1, "kill-once": 1, "nan": 0, "enospc-always": 1 + MAX_FAILURES, "refused": 0}
    summary = trial_summary(exp.trials, exp.epochs, meta["baseline"]).dropna(subset=["val_miou"])
    assert named["nan"] not in set(summary["trial"])
    assert summary.sort_values("val_miou").iloc[-1]["trial"] != named["nan"]
