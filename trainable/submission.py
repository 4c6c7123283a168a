"""What a challenge takes as a submission: its layouts by name, its rules, and the package.

``LAYOUTS`` holds each layout an edition can name (``Challenge.submission``): where the masks go
and how each is written, whether a standalone solution ships beside them, how it is zipped and
what SUBMISSION.md says of each file. ``masks-folder`` (2022, 2024) is one palette PNG per image
in the output folder, zipped under one top folder; ``masks-and-solution`` (2025) is
``masks/<stem>.png`` (single-channel index PNGs) and ``solution/`` with ``ckpt.pth``,
``requirements.txt`` and the standalone ``run.py`` (``trainable.solution``, which reproduces every
mask), zipped at the top level. A new layout is a new entry here; ``trainable.predict`` writes
whichever the edition names.
"""

from __future__ import annotations

import shutil
import sys
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np
import torch

from trainable import solution
from trainable.challenges import Challenge
from trainable.config import Config
from trainable.decode import write_mask
from trainable.errors import UserError
from trainable.layout import SOLUTION_FILES, SUBMISSION_NOTE, replacing

__all__ = ["DEFAULT_LAYOUT", "LAYOUTS", "MAX_ZIP_MB", "Layout", "check_rules", "get_layout", "write_submission_md",
           "zip_submission"]

MAX_ZIP_MB = 30.0  # the challenge's upload limit
# what the standalone run.py imports (trainable.solution), and timm, which builds smp's "tu-" encoders
SOLUTION_PACKAGES = ("torch", "segmentation-models-pytorch", "timm", "albumentations", "numpy", "pillow")
LIBRARIES = ("torch", "segmentation-models-pytorch", "timm", "albumentations", "numpy", "pillow", "ray", "optuna")


@dataclass(frozen=True)
class Layout:
    """One way of handing in predicted masks."""

    masks: str  # the folder inside the output that holds the masks ("": the output itself)
    write_mask: Callable[[np.ndarray, Path], None]  # one mask of class indices to one PNG
    solution: bool  # ships solution/: the weights, the pinned requirements and the standalone run.py
    top_level: bool  # zipped with the output's contents at the top, else under one folder of its name
    files: Callable[[dict, str, str], list[tuple[str, str]]]  # (result, checkpoint, zip) -> SUBMISSION.md rows

    def finish(self, folder: Path, spec: dict) -> None:
        """Write what ships beside the masks into ``folder``."""
        if self.solution:
            (folder / "solution").mkdir()
            torch.save({**spec, "state_dict": {k: v.cpu() for k, v in spec["state_dict"].items()}},
                       folder / "solution" / SOLUTION_FILES["weights"])
            (folder / "solution" / SOLUTION_FILES["requirements"]).write_text(_requirements())
            shutil.copyfile(solution.__file__, folder / "solution" / SOLUTION_FILES["script"])


def _masks_folder_files(result: dict, checkpoint: str, zipped: str) -> list[tuple[str, str]]:
    return [("`" + Path(result["out"]).name + "/<stem>.png`",
             "predicted mask per test image: 8-bit palette PNG, class indices 0..18, same stem as the image"),
            (zipped, "the masks zipped under one top folder, for upload"),
            (f"`{Path(checkpoint).name}`", "the trained weights (torch state dict, loads with `weights_only=True`)")]


def _masks_and_solution_files(result: dict, checkpoint: str, zipped: str) -> list[tuple[str, str]]:
    return [("`masks/<stem>.png`", "predicted mask per test image: single-channel 8-bit PNG, class indices 0..18, "
                                   "same stem as the image"),
            (f"`solution/{SOLUTION_FILES['weights']}`", "weights, network construction, normalisation and TTA "
                                                        "(loads with `weights_only=True`)"),
            (f"`solution/{SOLUTION_FILES['requirements']}`", "the packages run.py imports, pinned"),
            (f"`solution/{SOLUTION_FILES['script']}`", "`python3 run.py --input IMG --output MASK --weights "
                                                       "ckpt.pth` reproduces each mask, without this repository"),
            (zipped, f"`masks/` and `solution/` at the top level, for upload ({result['submission']})")]


LAYOUTS = {
    "masks-folder": Layout(masks="", write_mask=write_mask, solution=False, top_level=False,
                           files=_masks_folder_files),
    # single-channel PNGs: what the standalone run.py writes, so that it reproduces every mask
    "masks-and-solution": Layout(masks="masks", write_mask=solution.write_mask, solution=True, top_level=True,
                                 files=_masks_and_solution_files),
}
DEFAULT_LAYOUT = "masks-folder"  # predict without --submission


def get_layout(name: str) -> Layout:
    """The layout called ``name``; an unknown one lists the valid names."""
    if name not in LAYOUTS:
        raise UserError(f"submission layout {name!r}: unknown; valid layouts are {', '.join(LAYOUTS)}")
    return LAYOUTS[name]


def check_rules(challenge: Challenge, cfg: Config, params: int, what: str | Path) -> None:
    """Refuse a model (``what``: its checkpoint or configuration) of ``params`` trainable parameters
    over the edition's budget, or trained from weights the edition forbids."""
    if challenge.max_params and params > challenge.max_params:
        raise UserError(f"{what}: the model has {params:,} trainable parameters; {challenge.name} allows "
                        f"at most {challenge.max_params:,}; retrain a smaller one (search --challenge "
                        f"{challenge.name} keeps to the budget); nothing was written")
    if challenge.forbids(cfg.model.pretrained):
        raise UserError(f"{what}: the model was trained from {cfg.model.pretrained} weights, but "
                        f"{challenge.name} allows training from scratch only; retrain with model.pretrained=none; "
                        f"nothing was written")


def _requirements() -> str:
    """``run.py``'s packages pinned to the installed versions (a local build tag such as +cu130 dropped:
    the registry serves the plain version for every platform)."""
    lines = []
    for name in SOLUTION_PACKAGES:
        try:
            lines.append(f"{name}=={version(name).split('+')[0]}")
        except PackageNotFoundError:
            lines.append(name)
    return "\n".join(lines) + "\n"


def _library_versions() -> dict[str, str]:
    out = {}
    for name in LIBRARIES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            continue
    return out


def zip_submission(folder: Path, zip_path: Path, max_mb: float, top_level: bool = False) -> Path:
    """Zip ``folder``: its contents at the top (``top_level``), else under one folder of its name."""
    # the top folder is the output folder's real name: "--out ." or "--out x/.." must not give
    # entries named "/0.png" or "../0.png" that unpack outside the folder they are extracted in
    top = "" if top_level else f"{folder.resolve().name or 'masks'}/"
    files = sorted(p for p in folder.rglob("*") if p.is_file()) if top_level else sorted(folder.glob("*.png"))
    with replacing(zip_path) as tmp:
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
            for p in files:
                z.write(p, arcname=top + p.relative_to(folder).as_posix())  # names we wrote ourselves
        mb = tmp.stat().st_size / 2**20
        if max_mb and mb > max_mb:
            raise UserError(f"{zip_path}: the zip would be {mb:.1f} MB, over the {max_mb:g} MB upload limit; "
                            f"the masks are kept in {folder}")
    return zip_path


def write_submission_md(result: dict, checkpoint, cfg, where: Path) -> None:
    """SUBMISSION.md in ``where``: each file of the submission, the model, its parameters, the TTA, the
    command that reproduces it and the libraries it ran with."""
    libs = "\n".join(f"- {k} {v}" for k, v in _library_versions().items())
    if sys.argv and sys.argv[0].endswith("launch.py"):
        command = " ".join(["python", "launch.py", *sys.argv[1:]])
    else:
        command = f"python launch.py predict {checkpoint} --images IMAGES --out {result['out']}"
    weights = "scratch" if cfg.model.pretrained == "none" else cfg.model.pretrained
    scales = ", ".join(f"{s:g}" for s in result["scales"])
    zipped = f"`{Path(result['zip']).name}`" if result["zip"] else "(no zip)"
    rows = get_layout(result["layout"]).files(result, str(checkpoint), zipped)
    table = "\n".join(f"| {a} | {b} |" for a, b in rows)
    text = f"""# Submission

| file | what it is |
|---|---|
{table}

- **Model:** {cfg.model.arch} on {cfg.model.encoder}, decoder width {cfg.model.decoder_width}, trained from {weights}
- **Trainable parameters:** {result['params']:,} (`sum(p.numel() for p in model.parameters() if p.requires_grad)`)
- **Test-time augmentation:** scales {scales}, flip {'on' if result['flip'] else 'off'}
- **Images predicted:** {result['images']}
- **Reproduce:** `{command}`

## Libraries

{libs}
"""
    with replacing(where / SUBMISSION_NOTE) as tmp:
        tmp.write_text(text)
