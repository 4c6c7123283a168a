"""Predict a folder of images with a trained checkpoint and package the submission.

One palette PNG of class indices 0..18 per input image, named ``<stem>.png``, at the input's size
(or ``size``); optionally zipped with a single top folder, with a SUBMISSION.md beside the zip
saying what each file is, how to reproduce it and how many parameters the model has.
"""

from __future__ import annotations

import sys
import zipfile
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from trainable.augment import eval_transform
from trainable.build import load_trained_model
from trainable.classes import PALETTE
from trainable.config import Config, ConfigError, parse_value
from trainable.decode import IMAGE_EXTS, read_image
from trainable.errors import UserError
from trainable.layout import SUBMISSION_NOTE, replacing
from trainable.loop import resolve_device
from trainable.models import count_parameters
from trainable.tta import tta_probs

__all__ = ["MAX_ZIP_MB", "format_result", "parse_scales", "predict_folder"]

MAX_ZIP_MB = 30.0  # the challenge's upload limit
LIBRARIES = ("torch", "segmentation-models-pytorch", "timm", "albumentations", "numpy", "pillow", "ray", "optuna")


def parse_scales(text: str | None) -> tuple[float, ...] | None:
    """The scales of ``--tta 0.75,1,1.25`` (``None``: the checkpoint's own)."""
    if text is None:
        return None
    try:
        scales = parse_value("train.tta_scales", text)
        Config().set("train.tta_scales", scales)
    except ConfigError:
        raise UserError(f"--tta {text!r}: expected positive scales separated by commas, e.g. --tta 0.75,1,1.25") \
            from None
    if not scales:
        raise UserError(f"--tta {text!r}: expected at least one scale, e.g. --tta 1")
    return tuple(scales)


def format_result(result: dict) -> list[str]:
    """What ``predict`` prints: the notes (five at most), the masks written, and the zip."""
    notes = [f"note: {n}" for n in result["notes"][:5]]
    if len(result["notes"]) > 5:
        notes.append(f"note: ... and {len(result['notes']) - 5} more files ignored")
    lines = [*notes, f"predicted {result['images']} images -> {result['out']} (scales {result['scales']}, "
                     f"flip {'on' if result['flip'] else 'off'}, {result['params']:,} parameters)"]
    return lines + ([f"zip: {result['zip']}"] if result["zip"] else [])


def _images(folder: Path, notes: list[str]) -> list[Path]:
    """The images to predict, sorted; files that are not images (or hidden) are noted and skipped."""
    if not folder.is_dir():
        raise UserError(f"{folder}: image folder not found; pass an existing folder with --images")
    files = []
    for p in sorted(folder.iterdir()):
        if p.name.startswith(".") or p.suffix.lower() not in IMAGE_EXTS or not p.is_file():
            notes.append(f"{p}: {'hidden' if p.name.startswith('.') else 'not an image'}, ignored")
        else:
            files.append(p)
    if not files:
        raise UserError(f"{folder}: no images ({', '.join(IMAGE_EXTS)}) to predict")
    # one mask per stem: two images with the same stem would silently overwrite each other's mask
    by_stem: dict[str, Path] = {}
    for p in files:
        if p.stem in by_stem:
            raise UserError(f"{by_stem[p.stem]} and {p.name} would both be written as {p.stem}.png; rename or "
                            f"remove one of them")
        by_stem[p.stem] = p
    return files


def _check_out(out: Path, images: Path, checkpoint: Path, force: bool) -> None:
    """Refuse an output folder that is a file, that holds unrelated files (without ``force``), or that
    ``force`` would let us delete along with the images, the checkpoint or the working folder."""
    if out.exists() and not out.is_dir():
        raise UserError(f"{out}: exists and is not a folder; choose another --out")
    if out.exists() and any(out.iterdir()) and not force:
        raise UserError(f"{out}: output folder exists and is not empty; choose another --out or pass --force")
    resolved = out.resolve()
    keep = {"the image folder": images, "the checkpoint": checkpoint, "the working folder": Path.cwd()}
    for what, path in keep.items():
        path = path.expanduser().resolve()
        if resolved == path or resolved in path.parents:
            raise UserError(f"{out}: would replace {what} ({path}); choose a new folder for --out")


def _library_versions() -> dict[str, str]:
    out = {}
    for name in LIBRARIES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            continue
    return out


@torch.no_grad()
def predict_folder(checkpoint: str | Path, images: str | Path, out: str | Path, scales: Sequence[float] | None = None,
                   flip: bool | None = None, size: int | None = None, zip_path: str | Path | None = None,
                   force: bool = False, max_zip_mb: float = MAX_ZIP_MB) -> dict:
    """Write one mask per image into ``out``; scales/flip default to the checkpoint's configured TTA."""
    # ".." and symlinks resolved: the folder replaced, and the zip's top folder, are the real ones
    out, images = Path(out).expanduser().resolve(), Path(images).expanduser()
    _check_out(out, images, Path(checkpoint), force)
    if zip_path:
        zip_path = Path(zip_path)
        note = zip_path.parent / SUBMISSION_NOTE
        for path, flag in ((zip_path, "--zip"), (note, "--zip folder")):
            if path.exists() and not force:
                raise UserError(f"{path}: exists; choose another {flag} or pass --force to replace it")
        if zip_path.exists() and not zip_path.is_file():
            raise UserError(f"{zip_path}: exists and is not a file; choose another --zip")
    if scales is not None and (not scales or not all(s > 0 for s in scales)):
        raise UserError(f"TTA scales {list(scales)}: expected one or more positive scales, e.g. 0.75, 1, 1.25")
    notes: list[str] = []
    files = _images(images, notes)
    model, cfg, state = load_trained_model(checkpoint)
    norm = state.get("normalization")
    if not norm:
        raise UserError(f"{checkpoint}: the checkpoint has no normalisation statistics; retrain it with this version")
    device = resolve_device(cfg.train.device)
    model.to(device)
    scales = tuple(scales or cfg.train.tta_scales)
    flip = cfg.train.tta_flip if flip is None else flip
    transform = eval_transform(cfg.data.image_size, norm["mean"], norm["std"])

    # the masks go into a temporary folder that replaces ``out`` once all are written: a refused image
    # or an interrupt leaves ``out`` as it was (an existing one is only reached with --force)
    with replacing(out, replace_folder=True) as tmp:
        tmp.mkdir()
        for path in files:
            try:
                image = read_image(path)
            except (OSError, ValueError, Image.DecompressionBombError) as e:
                raise UserError(f"{path}: unreadable or truncated image ({e}); re-export or remove it; "
                                f"nothing was written") from None
            out_size = (size, size) if size else image.shape[:2]
            x = transform(image=image)["image"].unsqueeze(0).to(device)
            pred = tta_probs(model, x, scales, flip, out_size=out_size).argmax(1)[0].to(torch.uint8).cpu().numpy()
            png = Image.fromarray(np.ascontiguousarray(pred), mode="P")
            png.putpalette(PALETTE.flatten().tolist())
            png.save(tmp / f"{path.stem}.png")

    result = {"images": len(files), "out": str(out), "scales": list(scales), "flip": flip,
              "params": count_parameters(model), "zip": None, "notes": notes}
    if zip_path:  # a submission: the zip and, beside it, what the challenge asks to hand in
        result["zip"] = str(_zip(out, zip_path, max_zip_mb))
        _write_submission_md(result, checkpoint, cfg, zip_path.parent)
    return result


def _zip(folder: Path, zip_path: Path, max_mb: float) -> Path:
    # the top folder is the output folder's real name: "--out ." or "--out x/.." must not give
    # entries named "/0.png" or "../0.png" that unpack outside the folder they are extracted in
    top = folder.resolve().name or "masks"
    with replacing(zip_path) as tmp:
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
            for p in sorted(folder.glob("*.png")):
                z.write(p, arcname=f"{top}/{p.name}")  # file names we wrote ourselves: no separators in them
        mb = tmp.stat().st_size / 2**20
        if mb > max_mb:
            raise UserError(f"{zip_path}: the zip would be {mb:.1f} MB, over the {max_mb:g} MB upload limit; "
                            f"the masks are kept in {folder}")
    return zip_path


def _write_submission_md(result: dict, checkpoint, cfg, where: Path) -> None:
    libs = "\n".join(f"- {k} {v}" for k, v in _library_versions().items())
    if sys.argv and sys.argv[0].endswith("launch.py"):
        command = " ".join(["python", "launch.py", *sys.argv[1:]])
    else:
        command = f"python launch.py predict {checkpoint} --images IMAGES --out {result['out']}"
    weights = "scratch" if cfg.model.pretrained == "none" else cfg.model.pretrained
    scales = ", ".join(f"{s:g}" for s in result["scales"])
    zipped = f"`{Path(result['zip']).name}`" if result["zip"] else "(no zip)"
    rows = [
        ("`" + Path(result["out"]).name + "/<stem>.png`",
         "predicted mask per test image: 8-bit palette PNG, class indices 0..18, same stem as the image"),
        (zipped, "the masks zipped under one top folder, for upload"),
        (f"`{Path(str(checkpoint)).name}`", "the trained weights (torch state dict, loads with `weights_only=True`)"),
    ]
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
