"""Faults inside trials of one real search (ASHA + Optuna, retries, checkpoint retention), each
injected into its own trial: an exception, a worker killed mid-epoch and a full disk while writing
a checkpoint are retried from the last checkpoint up to the configured limit; a NaN loss ends its
trial at once with the reason recorded and never as the best; a configuration the rules refuse
ends without training; the rest of the search carries on and finishes, and checkpoint retention
keeps the experiment's size bounded through all of it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from optuna.trial import TrialState

from analysis import load_experiment, trial_summary
from analysis.summary import search_summary
from search_spaces.driver import ExperimentRecord
from search_spaces.driver.searcher import REFUSED_CONSTRAINT
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

PLAN = ("raise-once", "kill-once", "nan", "enospc-always", "refused")  # the sixth trial runs clean
NUM_SAMPLES = len(PLAN) + 1
EPOCHS = 4  # one more than the checkpoints retention keeps, so that it has to delete
KEEP = 2  # CheckpointConfig(num_to_keep=2) of the experiment's Tuner; Ray also keeps the latest
MAX_FAILURES = 2  # FailureConfig(max_failures=2)
LOG_BYTES_PER_EPOCH = 64_000  # result.json, progress.csv and TensorBoard events of one report, with room
DIVERGED = "diverged at epoch 2: training loss became nan"


@dataclass
class Search:
    exp_dir: Path
    record: ExperimentRecord
    results: object  # Tune's ResultGrid
    work: Path  # the fault log of every attempt
    summary: str  # what launch.py printed at the end
    trial: dict[str, str]  # role -> trial folder name

    def attempts(self, role: str) -> list[list[int]]:
        return epochs_per_attempt(self.work, self.trial[role].removeprefix("trial_"))

    def rows(self, role: str) -> list[dict]:
        return result_rows(self.exp_dir / self.trial[role])

    def result(self, role: str):
        (result,) = [r for r in self.results if Path(r.path).name == self.trial[role]]
        return result


@pytest.fixture(scope="module")
def search(tiny_master, tmp_path_factory) -> Search:
    root = tmp_path_factory.mktemp("faults")
    work = root / "log"
    work.mkdir()
    with local_ray(tmp_path_factory.getbasetemp() / "cache"):
        exp_dir, record = new_search(root, tiny_master, "--num-samples", str(NUM_SAMPLES), "--max-epochs",
                                     str(EPOCHS), "--grace-period", str(EPOCHS))
        results = run_search(exp_dir, record, FaultyTrainable(str(work), PLAN))
    trial = {role: f"trial_{trial_id}" for trial_id, role in roles(work).items()}
    assert set(trial) == {*PLAN, "ok"}, trial
    return Search(exp_dir, record, results, work, "\n".join(search_summary(exp_dir)), trial)


def test_an_exception_is_retried_from_the_last_checkpoint(search):
    # failed in epoch 2 (index 1): the retry starts at epoch 2 from the checkpoint of epoch 1, not at 1
    assert search.attempts("raise-once") == [[0, 1], [1, 2, 3]]
    assert [r["epoch"] for r in search.rows("raise-once")] == [1, 2, 3, 4]  # each epoch reported once
    assert [r["training_iteration"] for r in search.rows("raise-once")] == [1, 2, 3, 4]
    assert search.result("raise-once").error is None


def test_a_worker_killed_mid_epoch_is_retried_from_the_last_checkpoint(search):
    assert search.attempts("kill-once") == [[0, 1], [1, 2, 3]]
    assert [r["epoch"] for r in search.rows("kill-once")] == [1, 2, 3, 4]
    assert [r["training_iteration"] for r in search.rows("kill-once")] == [1, 2, 3, 4]
    assert search.result("kill-once").error is None


def test_a_full_disk_at_a_checkpoint_fails_the_trial_after_the_retry_limit(search):
    # every write of the second checkpoint hits a full disk: 1 + max_failures attempts, each from the
    # first checkpoint; then the trial fails, and what it had written stays loadable
    assert search.attempts("enospc-always") == [[0, 1]] + [[1]] * MAX_FAILURES
    assert [r["epoch"] for r in search.rows("enospc-always")] == [1]
    trial_dir = search.exp_dir / search.trial["enospc-always"]
    assert [read_checkpoint(c)["epoch"] for c in trial_dir.glob(f"checkpoint_*/{CHECKPOINT_FILE}")] == [1]
    assert "No space left on device" in str(search.result("enospc-always").error)


def test_a_nan_loss_stops_the_trial_with_its_reason_and_never_as_the_best(search):
    assert search.attempts("nan") == [[0, 1]]  # not retried: the same config and seed diverge again
    nan_dir = search.exp_dir / search.trial["nan"]
    assert (nan_dir / "stopped.txt").read_text().startswith(DIVERGED)
    rows = search.rows("nan")
    assert rows[-1]["stop_reason"].startswith(DIVERGED)
    assert search.result("nan").error is None  # ended by itself, not an error Ray would retry
    study_trial = _study_trials(search)[search.trial["nan"]]
    assert study_trial.state == TrialState.FAIL and study_trial.user_attrs["stop_reason"].startswith(DIVERGED)

    # its first epoch scored 99, the best of the search; no pick of the best ever chooses it
    assert rows[0]["val_miou"] == 99.0
    assert Path(search.results.get_best_result().path).name != nan_dir.name
    assert load_study(search.exp_dir).best_trial.user_attrs["tune_trial_id"] != nan_dir.name.removeprefix("trial_")
    best_line = next(line for line in search.summary.splitlines() if line.startswith("best trial"))
    assert nan_dir.name not in best_line
    assert f"note: {nan_dir.name} {DIVERGED}" in search.summary and "1 diverged" in search.summary
    exp = load_experiment(search.exp_dir)
    summary = trial_summary(exp.trials, exp.epochs, search.record.baseline)
    assert summary.dropna(subset=["val_miou"]).sort_values("val_miou").iloc[-1]["trial"] != nan_dir.name
    assert summary.set_index("trial").loc[nan_dir.name, "status"] == DIVERGED


def test_a_refused_configuration_ends_without_training(search):
    assert search.attempts("refused") == [[]]
    assert "over the budget" in (search.exp_dir / search.trial["refused"] / "refused.txt").read_text()
    assert search.result("refused").error is None
    # infeasible in the study (TPE ranks it below every feasible trial), not failed (TPE would ignore it)
    refused = _study_trials(search)[search.trial["refused"]]
    assert (refused.state, refused.constraints) == (TrialState.PRUNED, {REFUSED_CONSTRAINT: 1.0})
    assert all(not t.constraints for name, t in _study_trials(search).items() if name != search.trial["refused"])


def test_every_trial_ends_once_and_the_search_finishes(search):
    assert search.attempts("ok") == [[0, 1, 2, 3]]
    assert len(search.results) == NUM_SAMPLES
    assert [r for r in search.results if r.error] == [search.result("enospc-always")]
    study = _study_trials(search)
    assert len(load_study(search.exp_dir).trials) == len(study) == NUM_SAMPLES  # one study trial per Tune trial
    assert {role: study[name].state for role, name in search.trial.items()} == {
        "ok": TrialState.COMPLETE, "raise-once": TrialState.COMPLETE, "kill-once": TrialState.COMPLETE,
        "nan": TrialState.FAIL, "enospc-always": TrialState.FAIL, "refused": TrialState.PRUNED}
    exp = load_experiment(search.exp_dir)
    status = dict(zip(exp.trials["trial"], exp.trials["status"]))
    failures = dict(zip(exp.trials["trial"], exp.trials["failures"]))
    assert {role: status[name] for role, name in search.trial.items()} == {
        "ok": "completed", "raise-once": "completed", "kill-once": "completed", "nan": DIVERGED,
        "enospc-always": "errored", "refused": "refused"}
    assert {role: failures[name] for role, name in search.trial.items()} == {
        "ok": 0, "raise-once": 1, "kill-once": 1, "nan": 0, "enospc-always": 1 + MAX_FAILURES, "refused": 0}
    assert "best trial" in search.summary


def test_checkpoint_retention_bounds_the_experiment_size(search, capsys):
    checkpoint_bytes, per_trial = 0, {}
    for role in ("ok", "raise-once", "kill-once"):  # the trials that trained all their epochs
        trial_dir = search.exp_dir / search.trial[role]
        rows = search.rows(role)
        kept = {read_checkpoint(c / CHECKPOINT_FILE)["epoch"]: c for c in trial_dir.glob("checkpoint_*")}
        # the best two by val mIoU and the latest (what a resume needs) are kept; the rest deleted
        best = max(rows, key=lambda r: r["val_miou"])["epoch"]
        assert {best, EPOCHS} <= set(kept) and len(kept) <= KEEP + 1, (role, sorted(kept))
        checkpoint_bytes = max(checkpoint_bytes, *(_bytes(c) for c in kept.values()))
    for trial_dir in search.exp_dir.glob("trial_*"):
        per_trial[trial_dir.name] = _bytes(trial_dir)
    bound = (KEEP + 1) * checkpoint_bytes + EPOCHS * LOG_BYTES_PER_EPOCH
    total = _bytes(search.exp_dir)
    shared = total - sum(per_trial.values())  # experiment.json, the Optuna journal, Tune's experiment state
    full = [per_trial[search.trial[role]] for role in ("ok", "raise-once", "kill-once")]
    with capsys.disabled():
        print(f"\ncheckpoint {checkpoint_bytes:,} B; bytes per trial that trained {EPOCHS} epochs (one clean, one "
              f"retried after an exception, one after a kill): {', '.join(f'{b:,}' for b in full)}; bound per "
              f"trial {bound:,} B (= {KEEP + 1} checkpoints + {LOG_BYTES_PER_EPOCH:,} B/epoch of logs); experiment "
              f"of {NUM_SAMPLES} trials {total:,} B, of which {shared:,} B outside trial folders")
    assert max(per_trial.values()) <= bound < EPOCHS * checkpoint_bytes  # bounded, by retention: not all kept
    assert shared < 2_000_000
    assert total <= NUM_SAMPLES * bound + 2_000_000


def _bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def _study_trials(search: Search) -> dict:
    """Tune trial folder -> its Optuna trial."""
    return {f"trial_{t.user_attrs['tune_trial_id']}": t for t in load_study(search.exp_dir).trials}
