"""Ray's ASHA, with its rungs rebuilt when a search is restored.

Ray restores a search's trials, its searcher and its own state, but builds the scheduler afresh:
ASHA's rungs start empty, so after ``resume`` the first trials to reach a rung met no cutoff and all
went on. Here each restored trial's earlier results are read back from its ``result.json`` (as its
storage holds it, a local folder or an object store) and fed through ASHA's own bookkeeping as it
is added, up to the last result Tune had recorded for it: a resumed search, or one given more trials
(``resume EXP --num-samples N``), compares its new trials against every earlier one at each rung.
"""

from __future__ import annotations

import json

from ray.tune.schedulers import ASHAScheduler

from trainable.layout import RESULT_FILE

__all__ = ["RestoredASHA"]


class RestoredASHA(ASHAScheduler):
    """``ASHAScheduler`` that replays a restored trial's results into its rungs."""

    # reads the trial's storage (trial.storage.storage_filesystem, trial_fs_path) and ASHA's private
    # _trial_info, _time_attr and _max_t: tests/test_ray_optuna_internals.py
    def on_trial_add(self, tune_controller, trial) -> None:
        super().on_trial_add(tune_controller, trial)
        last = (trial.last_result or {}).get(self._time_attr)
        if not last:  # a new trial: nothing to replay
            return
        for result in _results(trial):
            if self._metric not in result or result.get(self._time_attr, last + 1) > last:
                continue
            if result[self._time_attr] >= self._max_t:  # ASHA records a last epoch as the trial ends
                super().on_trial_complete(tune_controller, trial, result)
                break
            super().on_trial_result(tune_controller, trial, result)

    # a trial whose last epoch was replayed has left its bracket already
    def on_trial_result(self, tune_controller, trial, result: dict) -> str:
        if trial.trial_id not in self._trial_info:
            return self.CONTINUE
        return super().on_trial_result(tune_controller, trial, result)

    def on_trial_complete(self, tune_controller, trial, result: dict) -> None:
        if trial.trial_id in self._trial_info:
            super().on_trial_complete(tune_controller, trial, result)

    def on_trial_remove(self, tune_controller, trial) -> None:
        if trial.trial_id in self._trial_info:
            super().on_trial_remove(tune_controller, trial)


def _results(trial) -> list[dict]:
    """The results in the trial's ``result.json``, as its storage holds it; none when it is unreadable."""
    fs = trial.storage.storage_filesystem
    try:
        with fs.open_input_stream(f"{trial.storage.trial_fs_path}/{RESULT_FILE}") as f:
            lines = f.readall().decode().splitlines()
    except (OSError, FileNotFoundError):
        return []
    rows = []
    for line in lines:
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # a line cut short by a killed writer
    return rows
