"""HyperBand's last rung: a trial at its last epoch ends by itself instead of being paused there."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from ray.tune.experiment import Trial
from ray.tune.schedulers import HyperBandScheduler, TrialScheduler

from search_spaces.hyperband import LastRungEnds

CONTROLLER = SimpleNamespace(search_alg=None)  # what HyperBand reads of Tune's controller when a trial is added


def _result(epoch: int) -> dict:
    return {"training_iteration": epoch, "val_miou": 1.0}


# two trials in one bracket of max_t 2 (no halving); the first reaches its last epoch while the other is
# one behind: Ray's scheduler pauses it until the other gets there, ours lets it end
@pytest.mark.parametrize("scheduler, at_last_epoch", [(HyperBandScheduler, TrialScheduler.PAUSE),
                                                      (LastRungEnds, TrialScheduler.CONTINUE)])
def test_a_trial_at_its_last_epoch_is_not_paused_for_its_bracket(scheduler, at_last_epoch):
    hyperband = scheduler(time_attr="training_iteration", max_t=2, reduction_factor=2)
    hyperband.set_search_properties("val_miou", "max")
    first, second = Trial("__fake", config={}, stub=True), Trial("__fake", config={}, stub=True)
    hyperband.on_trial_add(CONTROLLER, first)
    hyperband.on_trial_add(CONTROLLER, second)
    assert hyperband.on_trial_result(CONTROLLER, first, _result(1)) == TrialScheduler.CONTINUE
    assert hyperband.on_trial_result(CONTROLLER, second, _result(1)) == TrialScheduler.CONTINUE
    assert hyperband.on_trial_result(CONTROLLER, first, _result(2)) == at_last_epoch


def test_the_bracket_goes_on_when_a_trial_ended_at_its_last_epoch():
    hyperband = LastRungEnds(time_attr="training_iteration", max_t=2, reduction_factor=2)
    hyperband.set_search_properties("val_miou", "max")
    first, second = Trial("__fake", config={}, stub=True), Trial("__fake", config={}, stub=True)
    for trial in (first, second):
        hyperband.on_trial_add(CONTROLLER, trial)
        hyperband.on_trial_result(CONTROLLER, trial, _result(1))
    hyperband.on_trial_result(CONTROLLER, first, _result(2))
    hyperband.on_trial_complete(CONTROLLER, first, _result(2))
    assert hyperband.on_trial_result(CONTROLLER, second, _result(2)) == TrialScheduler.CONTINUE
    hyperband.on_trial_complete(CONTROLLER, second, _result(2))
    bracket, _ = hyperband._trial_info[second]
    assert bracket.finished() and not bracket.current_trials()
