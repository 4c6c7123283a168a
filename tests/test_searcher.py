"""The PRUNED coupling between Ray Tune and Optuna, driven through the searcher's own interface."""

from __future__ import annotations

from optuna.trial import TrialState
from ray import tune

from search_spaces.driver import make_searcher
from search_spaces.driver.searcher import REFUSED_CONSTRAINT

MAX_T = 3


def _search(tmp_path, refused: callable, trials: int) -> tuple[object, list[float]]:
    """A seeded TPE search over ``x`` in [0, 1] maximising -(x - 0.3)^2; a trial whose ``x`` the rule
    ``refused`` rejects ends as the product's trial does: no report, no error."""
    searcher = make_searcher(tmp_path / "study.journal", "s", seed=0, points_to_evaluate=[], max_t=MAX_T,
                             n_startup_trials=5, metric="score", mode="max")
    searcher.set_search_properties("score", "max", {"x": tune.uniform(0.0, 1.0)})
    xs = []
    for i in range(trials):
        trial_id = f"t{i}"
        x = searcher.suggest(trial_id)["x"]
        xs.append(x)
        if refused(x):
            searcher.on_trial_complete(trial_id, {"trial_id": trial_id, "done": True})  # Tune's result of no report
            continue
        for step in range(1, MAX_T + 1):
            result = {"score": -((x - 0.3) ** 2), "training_iteration": step}
            if step < MAX_T:
                searcher.on_trial_result(trial_id, result)
        searcher.on_trial_complete(trial_id, result)
    return searcher._ot_study, xs


def test_a_refused_configuration_is_infeasible_and_tpe_learns_to_avoid_it(tmp_path):
    study, xs = _search(tmp_path, lambda x: x > 0.5, trials=40)
    refused = [t for t in study.trials if t.params["x"] > 0.5]
    assert refused and all(t.state == TrialState.PRUNED and t.constraints == {REFUSED_CONSTRAINT: 1.0}
                           for t in refused)
    assert all(not t.constraints and t.state == TrialState.COMPLETE for t in study.trials if t.params["x"] <= 0.5)
    # half the range is refused; told FAIL, TPE kept proposing it (its unexplored region) in most trials
    after_startup = xs[5:]
    assert sum(x > 0.5 for x in after_startup) <= len(after_startup) // 4


def test_a_trials_last_result_told_twice_is_kept_once_without_optunas_warning(tmp_path):
    # Tune passes a trial's last result to on_trial_result and again to on_trial_complete
    import warnings

    searcher = make_searcher(tmp_path / "study.journal", "s", seed=0, points_to_evaluate=[], max_t=2,
                             n_startup_trials=5, metric="score", mode="max")
    searcher.set_search_properties("score", "max", {"x": tune.uniform(0.0, 1.0)})
    searcher.suggest("t0")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Optuna's "step=2 is already reported" would raise here
        for step in (1, 2):
            result = {"score": 0.1 * step, "training_iteration": step}
            searcher.on_trial_result("t0", result)
        searcher.on_trial_complete("t0", result)
    trial = searcher._ot_study.trials[0]
    assert trial.state == TrialState.COMPLETE and trial.intermediate_values == {1: 0.1, 2: 0.2}
