"""Where a run's data comes from: the user's folder, the CelebAMask-HQ release read through its
conversion (``trainable.release``), or the built-in synthetic set (``trainable.synthetic``)."""

from __future__ import annotations

import json
from pathlib import Path

from trainable.config import DataConfig
from trainable.release import is_release, prepare
from trainable.synthetic import ensure_synthetic

__all__ = ["data_root"]


def data_root(data: DataConfig, notes: list[str] | None = None) -> Path:
    """The folder the data sets are read from: ``data.root``; the release's index masks in the cache
    when ``data.root`` is the CelebAMask-HQ release; or, when it is empty, the built-in synthetic set
    at the training resolution, capped at 512 px (the set's size always follows ``data.image_size``).
    What a conversion found is appended to ``notes``."""
    if not data.root:
        return ensure_synthetic(size=min(data.image_size, 512))
    root = Path(data.root).expanduser()
    if not is_release(root):
        return root
    out = prepare(root, cache_dir=data.cache_dir)
    if notes is not None:
        meta = json.loads((out / "release.json").read_text())
        faces = ", ".join(f"{name} {n:,}" for name, n in meta["faces"].items())
        split = "the official split" if meta["official_split"] else "no split files, so one split"
        notes += [*meta["notes"], f"{root}: the CelebAMask-HQ release, its part masks combined into index masks in "
                                  f"{out} ({split}: {faces})"]
    return out
