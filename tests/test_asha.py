"""ASHA's rungs after a restore: a restored trial's results, read back from its result.json, reach the
rungs exactly as they did when the trial ran (Ray builds a restored search's scheduler empty)."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pyarrow.fs
import pytest
from ray.tune.schedulers import ASHAScheduler

from search_spaces.asha import RestoredASHA

# (trial, its val mIoU per epoch) of a search with max_t 4: a completed trial, two ASHA stopped, and one
# restored while running (Tune had recorded its epochs 1-2; its result.json already holds epoch 3)
HISTORY = {"a": [10.0, 20.0, 30.0, 40.0], "b": [5.0, 6.0], "c": [12.0], "d": [11.0, 25.0, 27.0]}
RECORDED = {"a": 4, "b": 2, "c": 1, "d": 2}


def _asha(cls):
    scheduler = cls(time_attr="training_iteration", max_t=4, grace_period=1, reduction_factor=2)
    scheduler.set_search_properties("val_miou", "max")
    return scheduler


def _result(epoch: int, value: float) -> dict:
    return {"training_iteration": epoch, "val_miou": value}


def _rungs(scheduler) -> list[tuple[float, dict]]:
    return [(milestone, dict(recorded)) for b in scheduler._brackets for milestone, recorded in b._rungs]


def test_a_restored_trials_results_reach_the_rungs_as_they_did_while_it_ran(tmp_path):
    live = _asha(ASHAScheduler)
    for name, values in HISTORY.items():
        trial = SimpleNamespace(trial_id=name)
        live.on_trial_add(None, trial)
        for epoch, value in enumerate(values[: RECORDED[name]], 1):
            if epoch == 4:
                live.on_trial_complete(None, trial, _result(epoch, value))
            else:
                live.on_trial_result(None, trial, _result(epoch, value))

    restored = _asha(RestoredASHA)
    for name, values in HISTORY.items():
        (tmp_path / name).mkdir()
        (tmp_path / name / "result.json").write_text(
            "".join(json.dumps(_result(e, v)) + "\n" for e, v in enumerate(values, 1)) + '{"training_iter')
        storage = SimpleNamespace(storage_filesystem=pyarrow.fs.LocalFileSystem(), trial_fs_path=str(tmp_path / name))
        trial = SimpleNamespace(trial_id=name, storage=storage,
                                last_result=_result(RECORDED[name], values[RECORDED[name] - 1]))
        restored.on_trial_add(None, trial)

    assert _rungs(restored) == _rungs(live)
    assert _rungs(restored)[-1] == (1, {"a": 10.0, "b": 5.0, "c": 12.0, "d": 11.0})  # every trial's first epoch
    # the running trial goes on from its epoch 2 against every earlier trial's scores
    action = restored.on_trial_result(None, SimpleNamespace(trial_id="d"), _result(3, 27.0))
    assert action == live.on_trial_result(None, SimpleNamespace(trial_id="d"), _result(3, 27.0))


def test_a_new_trial_reads_no_files(tmp_path):
    scheduler = _asha(RestoredASHA)
    trial = SimpleNamespace(trial_id="n", last_result={}, storage=None)  # a storage read would fail
    scheduler.on_trial_add(None, trial)
    assert all(not recorded for _, recorded in _rungs(scheduler))


@pytest.mark.parametrize("content", ["", "not json\n"])
def test_an_unreadable_result_file_replays_nothing(tmp_path, content):
    (tmp_path / "result.json").write_text(content)
    storage = SimpleNamespace(storage_filesystem=pyarrow.fs.LocalFileSystem(), trial_fs_path=str(tmp_path))
    scheduler = _asha(RestoredASHA)
    scheduler.on_trial_add(None, SimpleNamespace(trial_id="x", storage=storage, last_result=_result(2, 1.0)))
    assert all(not recorded for _, recorded in _rungs(scheduler))


def test_a_trial_that_left_its_bracket_goes_on_unjudged():
    scheduler = _asha(RestoredASHA)  # e.g. its last epoch replayed, then retried from an earlier checkpoint
    assert scheduler.on_trial_result(None, SimpleNamespace(trial_id="gone"), _result(2, 1.0)) == scheduler.CONTINUE
