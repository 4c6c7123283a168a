"""Test-time augmentation: subsets of scales and flip, scored on a trained checkpoint.

Not a training space: ``python launch.py tta EXP`` (or a checkpoint) computes each scale's (and the
flip's) probabilities once per image and scores every combination from them.
"""

from itertools import combinations

__all__ = ["SCALES", "combinations_to_score"]

SCALES = (0.5, 0.75, 1.0, 1.25, 1.5)


def combinations_to_score(scales: tuple[float, ...] = SCALES) -> list[tuple[tuple[float, ...], bool]]:
    """Every non-empty subset of ``scales``, without and with flip; ``((1.0,), False)`` first."""
    subsets = [c for r in range(1, len(scales) + 1) for c in combinations(scales, r)]
    combos = [(s, f) for f in (False, True) for s in subsets]
    plain = ((1.0,), False)
    return [plain] + [c for c in combos if c != plain] if plain in combos else combos
