"""Left/right label audit: the masks whose left and right classes are mirrored against the rest.

In real releases a few percent of the masks have their left/right labels exchanged (left and
right eye, brow and ear) while the mask still lines up with the face. A mask's orientation is
voted by its left/right pairs (4/5, 6/7, 8/9): where both classes of a pair are present, by which
of them lies further right; where only one is (a face in profile shows one eye), by its side of
the face's midline, the nose's centre (else the skin's). The data set's convention is the
orientation of the majority of the masks that show a left/right class; the masks of the other
orientation are mirrored. A mask without any left/right class is not judged, never flagged.

The votes need only each class's pixel count and the sum of its pixels' columns, which the data
check (``scan.scan_split``) gathers in the one pass it makes over every mask.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from trainable.classes import FLIP_PAIRS, NUM_CLASSES

__all__ = ["MIRRORED_POLICIES", "Audit", "audit", "column_sums", "mirrored_flags", "orientation"]

# data.mirrored: what training does with the masks the audit finds mirrored
MIRRORED_POLICIES = {"keep": "trains on them as they are",
                     "fix": "swaps their left/right labels as they are read (never in the files)",
                     "drop": "leaves them out of training"}

MIDLINE = (2, 1)  # the classes whose centre is the face's midline, in order of preference: nose, skin


def column_sums(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per class: its pixel count and the sum of its pixels' column indices."""
    flat = mask.reshape(-1)
    columns = np.broadcast_to(np.arange(mask.shape[1]), mask.shape).reshape(-1)
    counts = np.bincount(flat, minlength=NUM_CLASSES)[:NUM_CLASSES]
    sums = np.bincount(flat, weights=columns, minlength=NUM_CLASSES)[:NUM_CLASSES]
    return counts, sums


def orientation(counts: Sequence[float], sums: Sequence[float]) -> int:
    """+1: the subject's left classes lie on the image's right, as in CelebAMask-HQ; -1: the other
    way round; 0: no left/right class to tell by (or as many votes each way)."""
    def centre(c: int) -> float:
        return sums[c] / counts[c]

    midline = next((centre(c) for c in MIDLINE if counts[c]), None)
    votes = 0.0
    for left, right in FLIP_PAIRS:
        if counts[left] and counts[right]:
            votes += np.sign(centre(left) - centre(right))
        elif counts[left] and midline is not None:
            votes += np.sign(centre(left) - midline)
        elif counts[right] and midline is not None:
            votes += np.sign(midline - centre(right))
    return int(np.sign(votes))


@dataclass(frozen=True)
class Audit:
    """The masks of a split whose orientation is not the split's majority convention."""

    split: str
    masks: int  # masks in the split
    judged: int  # masks that show a left/right class
    mirrored: tuple[str, ...]  # their files

    def note(self, shown: int = 3) -> str:
        """The finding in one line, e.g. for the data check's notes; empty when nothing is mirrored."""
        if not self.mirrored:
            return ""
        names = ", ".join(Path(m).name for m in self.mirrored[:shown]) + (" ..." if len(self.mirrored) > shown else "")
        return (f"{len(self.mirrored)} of {self.masks} {self.split} masks have their left/right labels mirrored "
                f"against the other {self.judged - len(self.mirrored)} that show left/right classes, e.g. {names}; "
                f"data.mirrored={' or '.join(MIRRORED_POLICIES)} decides what training does with them")


def mirrored_flags(orientations: Sequence[int]) -> list[bool]:
    """Per mask: whether its ``orientation`` is the opposite of the majority's."""
    majority = 1 if sum(orientations) >= 0 else -1
    return [o == -majority for o in orientations]


def audit(split: str, masks: Sequence[str], orientations: Sequence[int]) -> Audit:
    """The audit of ``masks`` from their ``orientation`` votes."""
    flags = mirrored_flags(orientations)
    mirrored = tuple(m for m, f in zip(masks, flags, strict=True) if f)
    return Audit(split, len(masks), sum(1 for o in orientations if o), mirrored)
