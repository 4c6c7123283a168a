"""The crossing learning curves of bench/crossing.py: values worked out from the formulas of its
docstring, the noise, and the properties that make it a benchmark where early scores lie."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import spearmanr

from bench.crossing import EPOCHS, NOISE, OPTIMUM, CrossingCurves
from bench.searches import TARGET_REGRET, CrossingBench

CENTRES = (0.3, 0.6, 0.8)
CURVES = CrossingCurves()

# x -> the noiseless score at epochs 1, 3 and 9, from k, A and O of the docstring. For the first row:
# k = 0.12, A = 0.9 - 0.45 * 0.45 ** 2 = 0.808875, O = 0.35 * 0.12 / 0.62 = 0.0677419;
# y(1) = 0.808875 * (1 - e^-0.12) - 0.0677419 * (1 - e^-0.04) ** 2 = 0.091363
TABLE = [
    ((0.0, 0.0, 0.0, *CENTRES), (0.091363, 0.243676, 0.527993)),  # a low learning rate: slow, still rising
    ((1.0, 0.0, 0.0, *CENTRES), (0.320907, 0.192946, 0.163949)),  # the highest: best at epoch 1, then overfits
    ((0.7, 1.0, 0.0, *CENTRES), (0.228487, 0.529293, 0.849439)),  # strong augmentation: slow, ends highest
    ((0.5,) * 6, (0.191787, 0.460439, 0.788400)),
]


@pytest.mark.parametrize("x, expected", TABLE)
def test_the_noiseless_curve_is_the_documented_formula(x, expected):
    assert [CURVES.true_value(x, e) for e in (1, 3, 9)] == pytest.approx(expected, abs=1e-6)


def test_a_high_learning_rate_leads_early_and_strong_augmentation_wins_late():
    fast, slow = TABLE[1][0], TABLE[2][0]
    assert CURVES.true_value(fast, 1) > CURVES.true_value(slow, 1)
    assert CURVES.best_true(slow) > CURVES.best_true(fast) + 0.5


def test_the_noise_is_repeatable_and_of_the_stated_size():
    x = (0.5,) * 6
    assert CURVES.value(x, 3) == CURVES.value(x, 3)
    rng = np.random.default_rng(0)
    deviations = [CURVES.value(tuple(p), e) - CURVES.true_value(tuple(p), e)
                  for p in rng.random((300, 6)) for e in range(1, EPOCHS + 1)]
    assert np.std(deviations) == pytest.approx(NOISE, rel=0.1)
    assert abs(np.mean(deviations)) < NOISE / 10


@pytest.fixture(scope="module")
def draws():
    """2,000 uniform configurations: reported scores per epoch and the best noiseless score."""
    points = [tuple(p) for p in np.random.default_rng(0).random((2000, 6))]
    reported = np.array([[CURVES.value(p, e) for e in range(1, EPOCHS + 1)] for p in points])
    best = np.array([CURVES.best_true(p) for p in points])
    return reported, best


def test_early_scores_lie(draws):
    reported, best = draws
    assert spearmanr(reported[:, 0], best)[0] < 0.5  # epoch 1 says little about a configuration's best
    assert spearmanr(reported[:, 8], best)[0] > 0.95
    top = np.argsort(-best)[:20]  # the best 1 %
    rank_at_1 = np.argsort(np.argsort(reported[:, 0])) / len(best)
    assert np.mean(rank_at_1[top] >= 2 / 3) <= 0.2  # ASHA's first rung keeps the top third: most winners stop
    peak_epoch = reported.argmax(axis=1) + 1
    assert np.mean(peak_epoch < EPOCHS - 2) > 0.05  # some curves peak and overfit


def test_the_target_is_as_rare_as_the_hartmann_ones_and_the_optimum_is_the_best(draws):
    _, best = draws
    assert 0.005 <= np.mean(OPTIMUM - best <= TARGET_REGRET["crossing6"]) <= 0.02  # about 1 in 100
    assert best.max() < OPTIMUM
    assert CURVES.best_true((0.699, 1.0, 0.0, *CENTRES)) == pytest.approx(OPTIMUM, abs=1e-5)


def test_the_search_reports_noisy_scores_and_reaches_on_the_true_one():
    bench = CrossingBench()
    config = {f"x{i}": v for i, v in enumerate((0.699, 1.0, 0.0, *CENTRES))}
    last = bench.epoch_result(config, EPOCHS)
    noise = last["score"] - (OPTIMUM - last["regret"])  # the reported score less the true one
    assert 1e-9 < abs(noise) < 4 * NOISE
    assert last["regret"] == pytest.approx(0.0, abs=1e-5) and bench.reached(last)
    assert not bench.reached(bench.epoch_result(config, 1))


def test_the_bracket_odds_row_draws_trials_into_brackets_9_5_3():
    from types import SimpleNamespace

    from bench.searches import _weighted_brackets

    scheduler = _weighted_brackets()([9, 5, 3], time_attr="training_iteration", max_t=9, grace_period=1,
                                     reduction_factor=3)
    scheduler.set_search_properties("score", "max")
    np.random.seed(0)
    for i in range(1700):
        scheduler.on_trial_add(None, SimpleNamespace(trial_id=str(i)))
    first_rungs = [min(m for m, _ in scheduler._trial_info[str(i)]._rungs) for i in range(1700)]
    counts = [first_rungs.count(m) for m in (1, 3, 9)]  # a bracket's first rung: 1, 3, or 9 (never stopped)
    assert counts == pytest.approx([900, 500, 300], abs=60)
