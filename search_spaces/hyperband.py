"""Ray's HyperBand, with trials that reach the last epoch ending as they would anyway.

Ray's synchronous HyperBand pauses a trial that reaches its bracket's milestone until the bracket's
other trials get there too, and stops the paused ones once the bracket is done. At the last rung
(``max_t``, the trial's last epoch) that pause is for nothing: the trial has no epoch left, its
function is returning, and the pause (a checkpoint save and an actor stop) runs against the trial's
own end. Here a trial's report at ``max_t`` lets it finish; it then leaves its bracket, as a trial
that ends early does, and the bracket goes on with the others.
"""

from __future__ import annotations

from ray.tune.schedulers import HyperBandScheduler

__all__ = ["LastRungEnds"]


class LastRungEnds(HyperBandScheduler):
    """``HyperBandScheduler`` whose trials end by themselves at ``max_t`` instead of pausing there."""

    # reads HyperBand's private _time_attr and _max_t_attr: tests/test_ray_optuna_internals.py
    def on_trial_result(self, tune_controller, trial, result: dict) -> str:
        if result.get(self._time_attr, 0) >= self._max_t_attr:
            return self.CONTINUE  # the trial's last epoch: it ends, and on_trial_complete takes it out
        return super().on_trial_result(tune_controller, trial, result)
