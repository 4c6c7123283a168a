"""Crossing learning curves: a benchmark where a trial's early score lies about its final one.

Real training curves cross. A high learning rate rises fast and plateaus low; strong augmentation
rises slowly and ends high; a weakly regularised model peaks and then overfits. On such curves a
scheduler that stops trials by their early score stops the eventual winners, and a searcher that
learns from early scores learns the wrong thing. The MF-Hartmann functions have none of this (a
low-fidelity value is only ever worse than the true one), so this family is built to have it.

``CrossingCurves.value(x, epoch)`` is the validation score (0..1, maximised) after ``epoch`` of
``EPOCHS`` epochs of the configuration ``x`` in the unit cube, six dimensions:

- ``x0`` the learning rate (log scale, low to high), ``x1`` the augmentation strength, ``x2`` the
  regularisation (weight decay), ``x3..x5`` three settings that only move the plateau.
- The curve is the saturating exponential of the parametric learning-curve families (Domhan,
  Springenberg and Hutter 2015, "exp3"), minus a late overfitting term (the peaking curves of
  Viering and Loog 2022, "The shape of learning curves: a review"):
  ``y(t) = A (1 - exp(-k t)) - O (1 - exp(-k t / 3)) ** 2 + noise``
- speed ``k = 0.12 * 25 ** x0 / (1 + 3 x1)``: a high learning rate is 25x faster, strong
  augmentation up to 4x slower;
- plateau ``A = 0.9 - 0.45 (x0 - 0.45) ** 2 - 0.3 x0 ** 4 + 0.12 x1 - 0.08 x2 ** 2 - 0.25 sum_i w_i (x_i - c_i) ** 2``
  over ``i = 3..5``: the learning rate's best plateau is in the middle and the highest ones lose
  most, augmentation raises it, regularisation costs a little;
- overfitting ``O = 0.35 (1 - x1) (1 - x2) k / (k + 0.5)``: fast, weakly augmented, weakly
  regularised trials lose up to a third of their score late in training;
- noise: ``N(0, 1) * 0.01``, drawn from a generator seeded by the point and the epoch, so the same
  query gives the same value (validation noise); ``true_value`` is the noiseless curve.

What makes it hard (``tests/test_crossing.py`` checks these on 2,000 uniform points, seeded): the
rank correlation of the epoch-1 value with the best epoch's is low (about 0.3), and a large share
of the pairs of configurations are ordered differently at epoch 1 and at their best epoch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["EPOCHS", "NOISE", "OPTIMUM", "CrossingCurves"]

EPOCHS = 9  # as the Hartmann searches: ASHA rungs at 1, 3 and 9
NOISE = 0.01  # the standard deviation of a reported value around the true curve
# the best noiseless score of any configuration at any epoch: at x = (0.699, 1, 0, 0.3, 0.6, 0.8), epoch 9
# (scipy's differential_evolution from seed 0, polished; tests/test_crossing.py checks that none is better)
OPTIMUM = 0.849442
_CENTRES = (0.3, 0.6, 0.8)  # x3..x5's best values
_WEIGHTS = (1.0, 0.6, 0.4)


@dataclass(frozen=True)
class CrossingCurves:
    """The curve family above; ``dims`` 6, maximised, epochs 1..``EPOCHS``."""

    dims: int = 6
    epochs: int = EPOCHS

    @staticmethod
    def speed(x: tuple[float, ...]) -> float:
        return 0.12 * 25.0 ** x[0] / (1.0 + 3.0 * x[1])

    @staticmethod
    def plateau(x: tuple[float, ...]) -> float:
        nuisance = sum(w * (v - c) ** 2 for v, c, w in zip(x[3:6], _CENTRES, _WEIGHTS))
        return (0.9 - 0.45 * (x[0] - 0.45) ** 2 - 0.3 * x[0] ** 4 + 0.12 * x[1] - 0.08 * x[2] ** 2
                - 0.25 * nuisance)

    def true_value(self, x: tuple[float, ...], epoch: int) -> float:
        """The noiseless score after ``epoch`` epochs."""
        k = self.speed(x)
        overfit = 0.35 * (1.0 - x[1]) * (1.0 - x[2]) * k / (k + 0.5)
        return float(self.plateau(x) * (1.0 - np.exp(-k * epoch)) - overfit * (1.0 - np.exp(-k * epoch / 3.0)) ** 2)

    def value(self, x: tuple[float, ...], epoch: int) -> float:
        """The reported (noisy) score after ``epoch`` epochs: the same query, the same value."""
        rng = np.random.default_rng(abs(hash((tuple(float(v) for v in x), epoch))))
        return self.true_value(x, epoch) + NOISE * float(rng.normal())

    def best_true(self, x: tuple[float, ...]) -> float:
        """The best noiseless score over the epochs: what a trial that keeps its best epoch is worth."""
        return max(self.true_value(x, e) for e in range(1, self.epochs + 1))
