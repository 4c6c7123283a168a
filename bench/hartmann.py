"""Multi-fidelity Hartmann functions: published benchmarks for multi-fidelity search.

The Hartmann-3 and Hartmann-6 functions (minimised on the unit cube; minima -3.86278 and -3.32237)
with a fidelity ``z`` in 3..Z (the package's range, Z = 100), as the MFHartmann benchmarks of the
``mf-prior-bench`` package define them (after Kandasamy et al. 2017, "Multi-fidelity Bayesian
optimisation with continuous approximations"): with ``s = log(z) / log(Z)``, the weights become
``alpha - bias * (1 - s)`` (the function flattens at low fidelity) and ``|N(0, 1)| * noise *
(1 - s)`` is added, the draw seeded by the point and the fidelity, so the same query gives the
same value. The highest fidelity is the true, noiseless function. ``PRESETS`` are the package's
bias and noise per correlation between low and high fidelity, from good to terrible.
``tests/test_hartmann.py`` checks points against values computed by the package's own generator.

``MixedHartmann`` is the same function over a space like this project's: some dimensions are a
choice among a few levels (as ``tune.choice`` over augmentation settings), the others continuous.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

__all__ = ["FUNCTIONS", "LOWEST_FIDELITY", "PRESETS", "MFHartmann", "MixedHartmann"]

# name -> (alpha, A, P * 1e4, the minimiser, the minimum)
FUNCTIONS = {
    "hartmann3": (
        (1.0, 1.2, 3.0, 3.2),
        ((3.0, 10, 30), (0.1, 10, 35), (3.0, 10, 30), (0.1, 10, 35)),
        ((3689, 1170, 2673), (4699, 4387, 7470), (1091, 8732, 5547), (381, 5743, 8828)),
        (0.114614, 0.555649, 0.852547), -3.86278,
    ),
    "hartmann6": (
        (1.0, 1.2, 3.0, 3.2),
        ((10, 3, 17, 3.5, 1.7, 8), (0.05, 10, 17, 0.1, 8, 14), (3, 3.5, 1.7, 10, 17, 8), (17, 8, 0.05, 10, 0.1, 14)),
        ((1312, 1696, 5569, 124, 8283, 5886), (2329, 4135, 8307, 3736, 1004, 9991),
         (2348, 1451, 3522, 2883, 3047, 6650), (4047, 8828, 8732, 5743, 1091, 381)),
        (0.20169, 0.150011, 0.476874, 0.275332, 0.311652, 0.6573), -3.32237,
    ),
}
# correlation between low- and high-fidelity values -> (bias, noise), as mf-prior-bench sets them
PRESETS = {"good": (2.5, 2.0), "moderate": (3.0, 3.0), "bad": (3.5, 4.0), "terrible": (4.0, 5.0)}
SEED = 1337  # mf-prior-bench's default seed of the noise
LOWEST_FIDELITY = 3  # the start of the package's fidelity range (3, 100, 1)


@dataclass(frozen=True)
class MFHartmann:
    """``value(x, z)``: the Hartmann function ``name`` at fidelity ``z`` of ``fidelities``."""

    name: str = "hartmann6"
    preset: str = "good"
    fidelities: int = 100

    @property
    def dims(self) -> int:
        return len(FUNCTIONS[self.name][3])

    @property
    def minimum(self) -> float:
        return FUNCTIONS[self.name][4]

    def value(self, x: tuple[float, ...], z: int) -> float:
        alpha, a, p, _, _ = FUNCTIONS[self.name]
        bias, noise = PRESETS[self.preset]
        s = np.log(z) / np.log(self.fidelities)
        weights = np.asarray(alpha) - bias * (1 - s)
        inner = np.sum(np.asarray(a) * (np.asarray(x, float) - 1e-4 * np.asarray(p)) ** 2, axis=-1)
        h = -float(np.sum(weights * np.exp(-inner)))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # as the package seeds it: the product may overflow
            rng = np.random.default_rng(seed=abs(SEED * z * hash(tuple(x))))
        return h + float(abs(rng.normal()) * noise * (1 - s))

    def regret(self, x: tuple[float, ...]) -> float:
        """How far the true (highest-fidelity) value of ``x`` is above the minimum."""
        return self.value(x, self.fidelities) - self.minimum


@dataclass(frozen=True)
class MixedHartmann:
    """An ``MFHartmann`` whose first ``choices`` dimensions take one of ``levels`` evenly spaced values."""

    base: MFHartmann = MFHartmann()
    choices: int = 3
    levels: int = 5

    @property
    def fidelities(self) -> int:
        return self.base.fidelities

    def grid(self) -> list[float]:
        return [(i + 0.5) / self.levels for i in range(self.levels)]

    @property
    def dims(self) -> int:
        return self.base.dims

    def value(self, x: tuple[float, ...], z: int) -> float:
        grid = self.grid()
        if any(v not in grid for v in x[: self.choices]):
            raise ValueError(f"dimensions 0..{self.choices - 1} take one of {grid}")
        return self.base.value(x, z)

    def regret(self, x: tuple[float, ...]) -> float:
        """Above the continuous function's minimum (the grid may not reach it: regret stays >= 0)."""
        return self.base.regret(x)
