"""The folder layouts a face-parsing data set is read in, by name, and finding a split's folders.

Image and mask are paired by file stem. ``course``: ``<root>/train/train_image/0.jpg`` +
``<root>/train/train_mask/0.png`` (also ``val``, and ``test/test_image`` without masks);
``generic`` (also the 2025 release's): ``<root>/<split>/images`` + ``<root>/<split>/masks`` (or
``labels``). Every folder name of a data set is spelled here; the rest asks ``DATA_LAYOUTS``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from trainable.errors import UserError

__all__ = ["DATA_LAYOUTS", "DataError", "DataLayout", "find_split", "has_split", "split_folders"]

MAX_LISTED = 20  # problems printed before "... and N more"


class DataError(UserError):
    """Problems with a data set; each line names a file and what is wrong with it."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        shown = problems[:MAX_LISTED]
        more = len(problems) - len(shown)
        super().__init__("\n".join(shown + ([f"... and {more} more problems"] if more else [])))


@dataclass(frozen=True)
class DataLayout:
    """Where a layout keeps a split's images and masks, relative to the data folder."""

    images: str  # a format string over the split's name
    masks: tuple[str, ...]  # the same, in order of preference

    def image_dir(self, root: Path, split: str) -> Path:
        return Path(root) / self.images.format(split=split)

    def mask_dirs(self, root: Path, split: str) -> tuple[Path, ...]:
        return tuple(Path(root) / m.format(split=split) for m in self.masks)


DATA_LAYOUTS = {
    "course": DataLayout("{split}/{split}_image", ("{split}/{split}_mask",)),
    "generic": DataLayout("{split}/images", ("{split}/masks", "{split}/labels")),
}


def split_folders(split: str) -> str:
    """Where ``split``'s images may be, for a message: "test/test_image or test/images"."""
    return " or ".join(layout.images.format(split=split) for layout in DATA_LAYOUTS.values())


def find_split(root: str | Path, split: str, with_masks: bool = True) -> tuple[Path, Path | None]:
    """The image folder and mask folder of ``split`` under ``root``, in either layout."""
    root = Path(root)
    if not root.is_dir():
        raise DataError([f"{root}: data folder not found; pass an existing folder with --data"])
    for layout in DATA_LAYOUTS.values():
        img_dir = layout.image_dir(root, split)
        if img_dir.is_dir():
            if not with_masks:
                return img_dir, None
            for mask_dir in layout.mask_dirs(root, split):
                if mask_dir.is_dir():
                    return img_dir, mask_dir
            names = " or ".join(str(m) for m in layout.mask_dirs(root, split))
            raise DataError([f"{img_dir}: found images but no mask folder; expected {names}"])
    expected = " or ".join(f"{layout.images.format(split=split)} ({name} layout)"
                           for name, layout in DATA_LAYOUTS.items())
    raise DataError([f"{root / split}: no '{split}' split; expected {expected}"])


def has_split(root: str | Path, split: str) -> bool:
    """Whether ``root`` holds ``split`` in either layout (its folders, not yet its files)."""
    return any(layout.image_dir(Path(root), split).is_dir() for layout in DATA_LAYOUTS.values())
