"""The multi-fidelity Hartmann benchmarks of bench/hartmann.py against values computed by the
mf-prior-bench package's own generator (mfpbench 1.10.0, synthetic/hartmann/generators.py, seed
1337, 100 fidelities), and the published minima at the highest fidelity."""

from __future__ import annotations

import pytest

from bench.hartmann import PRESETS, MFHartmann, MixedHartmann

OPT6 = (0.20169, 0.150011, 0.476874, 0.275332, 0.311652, 0.6573)
OPT3 = (0.114614, 0.555649, 0.852547)
POINTS6 = [OPT6, (0.1, 0.2, 0.3, 0.4, 0.5, 0.6), (0.9, 0.1, 0.5, 0.5, 0.2, 0.8)]
POINTS3 = [OPT3, (0.3, 0.6, 0.9)]

# preset, fidelity -> Hartmann-6 at POINTS6, Hartmann-3 at POINTS3 (mfpbench's values, 6 decimals)
PACKAGE = {
    ("terrible", 1): ([4.002587, 6.327493, 3.404968], [5.013052, 4.64665]),
    ("terrible", 10): ([0.180837, 1.882879, 2.961704], [-0.546747, 0.321478]),
    ("bad", 1): ([2.953158, 4.95295, 2.690951], [3.709842, 3.402086]),
    ("bad", 10): ([-0.312023, 1.31109, 2.314316], [-0.973975, -0.257123]),
    ("moderate", 1): ([1.90373, 3.578407, 1.976935], [2.406631, 2.157521]),
    ("moderate", 10): ([-0.804883, 0.739301, 1.666928], [-1.401204, -0.835723]),
    ("good", 1): ([0.854301, 2.203865, 1.262919], [1.103421, 0.912956]),
    ("good", 10): ([-1.297743, 0.167512, 1.01954], [-1.828432, -1.414324]),
}


@pytest.mark.parametrize("preset, z", list(PACKAGE))
def test_values_match_the_package(preset, z):
    six, three = PACKAGE[preset, z]
    assert [MFHartmann("hartmann6", preset).value(x, z) for x in POINTS6] == pytest.approx(six, abs=1e-6)
    assert [MFHartmann("hartmann3", preset).value(x, z) for x in POINTS3] == pytest.approx(three, abs=1e-6)


@pytest.mark.parametrize("preset", list(PRESETS))
def test_the_highest_fidelity_is_the_published_noiseless_function(preset):
    assert MFHartmann("hartmann6", preset).value(OPT6, 100) == pytest.approx(-3.32237, abs=1e-5)
    assert MFHartmann("hartmann3", preset).value(OPT3, 100) == pytest.approx(-3.86278, abs=1e-5)
    assert MFHartmann("hartmann6", preset).value(POINTS6[1], 100) == pytest.approx(-1.406911, abs=1e-6)
    assert MFHartmann("hartmann6", preset).regret(OPT6) == pytest.approx(0.0, abs=1e-5)


def test_worse_presets_correlate_worse_across_fidelities():
    import numpy as np

    rng = np.random.default_rng(0)
    points = [tuple(rng.uniform(size=6)) for _ in range(200)]

    def rank_corr(preset: str) -> float:
        f = MFHartmann("hartmann6", preset)
        low, high = [f.value(x, 5) for x in points], [f.value(x, 100) for x in points]
        return float(np.corrcoef(np.argsort(np.argsort(low)), np.argsort(np.argsort(high)))[0, 1])

    corr = [rank_corr(p) for p in ("good", "moderate", "bad", "terrible")]
    assert corr == sorted(corr, reverse=True) and corr[0] > corr[-1] + 0.1


def test_mixed_dimensions_take_only_their_levels():
    f = MixedHartmann(choices=3, levels=5)
    assert f.grid() == [0.1, 0.3, 0.5, 0.7, 0.9]
    assert f.value((0.1, 0.1, 0.5, 0.27, 0.31, 0.65), 100) == MFHartmann().value((0.1, 0.1, 0.5, 0.27, 0.31, 0.65), 100)
    with pytest.raises(ValueError, match="take one of"):
        f.value((0.2, 0.1, 0.5, 0.27, 0.31, 0.65), 100)


def test_epochs_map_onto_the_packages_fidelity_range_as_a_share_of_it():
    from bench.searches import HartmannBench

    # mf-prior-bench's range is 3..100; epoch e of 9 is round(100 e / 9), the last one the true function
    assert HartmannBench("mfh6-good").fidelities == [11, 22, 33, 44, 56, 67, 78, 89, 100]
    assert HartmannBench("mixed6-terrible").fidelities[-1] == MFHartmann().fidelities


def test_the_products_tpe_samples_one_density_per_parameter():
    import optuna

    from search_spaces.algorithms import SEARCHERS

    def suggestions(sampler) -> list[tuple[float, float]]:
        study = optuna.create_study(sampler=sampler)
        for _ in range(12):
            trial = study.ask()
            x, y = trial.suggest_float("x", 0, 1), trial.suggest_float("y", 0, 1)
            study.tell(trial, (x - 0.3) ** 2 + (y - 0.7) ** 2)
        return [tuple(t.params.values()) for t in study.trials]

    product = suggestions(SEARCHERS["tpe"].build(0, 3))
    assert product == suggestions(optuna.samplers.TPESampler(seed=0, n_startup_trials=3, multivariate=False))
    assert product != suggestions(optuna.samplers.TPESampler(seed=0, n_startup_trials=3, multivariate=True))
