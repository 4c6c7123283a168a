"""No configuration twice on a finite space (search_spaces.unvisited), in Optuna alone and in a real
Ray Tune search with the product's searcher."""

from __future__ import annotations

import optuna
import pytest

from search_spaces.algorithms import SEARCHERS
from search_spaces.unvisited import MAX_GRID, Unvisited, finite_space, tried_all

optuna.logging.set_verbosity(optuna.logging.WARNING)


def _grid_objective(trial: optuna.Trial) -> float:
    # 4 x 3 x 4 = 48 configurations, a stepped float among them; one clearly best value per parameter
    a = trial.suggest_categorical("a", ["none", "report", "inverse_freq", "sqrt"])
    b = trial.suggest_int("b", 0, 2)
    c = trial.suggest_float("c", 0.0, 0.3, step=0.1)
    return (a == "report") + (b == 2) + c


def _study(sampler: optuna.samplers.BaseSampler, trials: int, objective=_grid_objective) -> optuna.Study:
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(objective, n_trials=trials)
    return study


def _configurations(study: optuna.Study) -> list[tuple]:
    return [tuple(t.params.values()) for t in study.trials]


@pytest.mark.parametrize("searcher", ["tpe", "random"])
def test_the_products_samplers_try_every_configuration_of_a_finite_space_once(searcher):
    study = _study(SEARCHERS[searcher].build(0, 5), trials=48)
    assert len(set(_configurations(study))) == 48
    assert tried_all(study)
    # the sampler alone repeats: univariate TPE keeps drawing each parameter's best value
    assert len(set(_configurations(_study(SEARCHERS[searcher].build(0, 5).sampler, trials=48)))) < 40


def test_a_multivariate_sampler_draws_jointly_until_it_repeats_a_configuration():
    def mv() -> optuna.samplers.TPESampler:
        return optuna.samplers.TPESampler(seed=1, n_startup_trials=5, multivariate=True)

    guarded = _configurations(_study(Unvisited(mv(), 1), trials=48))
    alone = _configurations(_study(mv(), trials=48))
    assert len(set(guarded)) == 48 and len(set(alone)) < 40
    # up to the sampler's first repeat, every draw is the multivariate sampler's own
    first_repeat = next(i for i, c in enumerate(alone) if c in alone[:i])
    assert 5 < first_repeat and guarded[:first_repeat] == alone[:first_repeat]


def test_a_draw_it_replaces_is_reproducible_from_the_seed():
    first = _configurations(_study(SEARCHERS["tpe"].build(3, 5), trials=30))
    assert first == _configurations(_study(SEARCHERS["tpe"].build(3, 5), trials=30))
    assert first != _configurations(_study(SEARCHERS["tpe"].build(4, 5), trials=30))


def test_a_stepped_float_counts_as_tried_whatever_its_rounding():
    study = _study(SEARCHERS["random"].build(0, 5), trials=48)
    cs = sorted({t.params["c"] for t in study.trials})
    assert len(cs) == 4 and cs == pytest.approx([0.0, 0.1, 0.2, 0.3])


@pytest.mark.parametrize("multivariate", [False, True])
def test_a_continuous_parameter_leaves_every_draw_to_the_sampler(multivariate):
    def objective(trial):
        return trial.suggest_categorical("a", [0, 1]) + trial.suggest_float("x", 0.0, 1.0)

    def tpe() -> optuna.samplers.TPESampler:
        return optuna.samplers.TPESampler(seed=0, n_startup_trials=3, multivariate=multivariate)

    guarded = _study(Unvisited(tpe(), 0), 15, objective)
    alone = _study(tpe(), 15, objective)
    assert _configurations(guarded) == _configurations(alone)
    assert finite_space(guarded) == {} and not tried_all(guarded)


def test_a_grid_larger_than_the_listing_limit_is_left_to_the_sampler():
    def objective(trial):
        return trial.suggest_int("i", 0, MAX_GRID) / MAX_GRID

    study = _study(Unvisited(optuna.samplers.RandomSampler(seed=0), 0), 3, objective)
    assert finite_space(study) == {}
    assert _configurations(study) == _configurations(_study(optuna.samplers.RandomSampler(seed=0), 3, objective))


def test_a_real_search_ends_when_it_has_tried_every_configuration(tmp_path):
    # Tune asks for 20 trials of a 6-configuration space: the product's searcher tries each once and
    # ends the search, with the study holding 6 trials
    import ray
    from ray import tune

    from search_spaces.driver import make_searcher

    def trainable(config):
        for epoch in range(1, 3):
            tune.report({"score": config["lr"] * (1 + config["width"]) + epoch, "training_iteration": epoch})

    searcher = make_searcher(tmp_path / "study.journal", "s", seed=0, points_to_evaluate=[], max_t=2,
                             n_startup_trials=2, metric="score", mode="max")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        results = tune.Tuner(trainable, param_space={"lr": tune.choice([0.1, 0.3, 1.0]), "width": tune.choice([0, 1])},
                             tune_config=tune.TuneConfig(search_alg=searcher, num_samples=20, max_concurrent_trials=1),
                             run_config=tune.RunConfig(name="e", storage_path=str(tmp_path / "runs"))).fit()
    finally:
        ray.shutdown()
    configs = [(r.config["lr"], r.config["width"]) for r in results]
    assert len(configs) == 6 and len(set(configs)) == 6
    assert len(searcher._ot_study.trials) == 6 and tried_all(searcher._ot_study)
