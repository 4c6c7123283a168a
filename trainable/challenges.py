"""The editions of the CelebAMask face-parsing challenge, as data: one entry per edition.

An edition fixes the number it is scored by, the parameter budget, whether pretrained weights are
allowed and what a submission looks like. ``search --challenge NAME`` takes the first three into
the experiment record (explicit flags still win, except a flag that breaks the edition's rules,
which is refused). A new edition is a new entry here, not new code.
"""

from __future__ import annotations

from dataclasses import dataclass

from trainable.errors import UserError

__all__ = ["CHALLENGES", "Challenge", "get_challenge"]


@dataclass(frozen=True)
class Challenge:
    name: str
    about: str
    metric: str  # what the grader scores: a metric each trial reports
    max_params: int  # the most trainable parameters allowed (model.max_params); 0: no budget
    pretrained: bool  # ImageNet (or other) pretrained weights allowed
    submission: str  # the layout of what is handed in (trainable.submission.LAYOUTS)
    max_zip_mb: float  # the upload limit (0: none)

    def forbids(self, pretrained: str) -> bool:
        """Whether the edition's rules forbid training from ``pretrained`` weights (``model.pretrained``)."""
        return not self.pretrained and pretrained != "none"


CHALLENGES = {c.name: c for c in (
    Challenge("ai6126-2022", "AI6126 2022: 5,000 train / 1,000 val pairs, course mIoU, ImageNet weights allowed",
              metric="val_miou", max_params=0, pretrained=True, submission="masks-folder", max_zip_mb=30.0),
    Challenge("ce7454-2024", "CE7454 2024: as 2022, fewer than 2,000,000 parameters, trained from scratch",
              metric="val_miou", max_params=1_999_999, pretrained=False, submission="masks-folder", max_zip_mb=30.0),
    Challenge("ce7454-2025", "CE7454 2025: 1,000 train pairs, per-image F-score, fewer than 1,821,085 parameters, "
                             "trained from scratch",
              metric="val_fscore", max_params=1_821_084, pretrained=False, submission="masks-and-solution",
              max_zip_mb=0.0),
)}


def get_challenge(name: str, flag: str = "--challenge") -> Challenge:
    """The edition called ``name``; an unknown name (given with ``flag``) lists the valid ones."""
    if name not in CHALLENGES:
        raise UserError(f"{flag} {name}: unknown challenge; valid challenges are {', '.join(CHALLENGES)}")
    return CHALLENGES[name]
