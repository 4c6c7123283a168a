"""The per-epoch record of a trial that starts again (``search_spaces.driver.results``), on the storage
file system as the driver writes it: rewound to its checkpoint when it reports again, kept whole when
it does not."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pyarrow.fs as pafs
import pytest

from search_spaces.driver.results import ResultRecord


class _Trial:
    """What the record reads of a Tune trial: its storage folder and the report its checkpoint holds
    (hashable by identity, as Tune's trials are)."""

    def __init__(self, folder, checkpoint_iteration: int | None):
        self.storage = SimpleNamespace(trial_fs_path=str(folder), storage_filesystem=pafs.LocalFileSystem(),
                                       trial_driver_staging_path=str(folder / "staging"))
        self.checkpoint = checkpoint_iteration is not None
        self.latest_checkpoint_result = SimpleNamespace(metrics={"training_iteration": checkpoint_iteration})
        self.config = {}
        self.local_path = str(folder / "staging")  # where Ray's logger writes params.json
        (folder / "staging").mkdir(parents=True)


def _rows(folder) -> list[int]:
    return [json.loads(line)["training_iteration"] for line in (folder / "result.json").read_text().splitlines()]


@pytest.fixture
def reported(tmp_path):
    """A trial folder whose record holds three reports."""
    (tmp_path / "result.json").write_text("".join(json.dumps({"training_iteration": i, "epoch": i}) + "\n"
                                                  for i in (1, 2, 3)))
    return tmp_path


def test_a_trial_that_reports_again_is_rewound_to_its_checkpoint_first(reported):
    record, trial = ResultRecord(), _Trial(reported, checkpoint_iteration=2)
    record.log_trial_start(trial)
    record.log_trial_result(3, trial, {"training_iteration": 3, "epoch": 3, "again": True})
    assert _rows(reported) == [1, 2, 3]
    assert json.loads((reported / "result.json").read_text().splitlines()[-1])["again"]  # the new report, once


def test_a_trial_that_reports_nothing_again_keeps_every_row(reported):
    # a driver killed after the study ended the trial, before Tune's snapshot said so: on resume the trial
    # is started and ends at once (searcher.skip_finished_trials); the study keeps all three values
    record, trial = ResultRecord(), _Trial(reported, checkpoint_iteration=2)
    record.log_trial_start(trial)
    record.log_trial_end(trial)
    assert _rows(reported) == [1, 2, 3]


def test_a_new_trial_starts_an_empty_record(tmp_path):
    ResultRecord().log_trial_start(_Trial(tmp_path / "t", checkpoint_iteration=None))
    assert (tmp_path / "t" / "result.json").read_text() == ""


def test_a_trial_restarted_without_a_start_onto_an_older_checkpoint_reports_each_epoch_once(reported):
    # PBT exploiting a running trial onto a donor's checkpoint: Tune restarts it without log_trial_start,
    # and its next report repeats an iteration the record already holds
    record, trial = ResultRecord(), _Trial(reported, checkpoint_iteration=3)
    record.log_trial_start(trial)
    record.log_trial_result(2, trial, {"training_iteration": 2, "epoch": 2, "again": True})
    record.log_trial_result(3, trial, {"training_iteration": 3, "epoch": 3})
    assert _rows(reported) == [1, 2, 3]
    assert json.loads((reported / "result.json").read_text().splitlines()[1])["again"]
