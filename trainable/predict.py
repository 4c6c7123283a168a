"""Predict a folder of images with a trained checkpoint and package the submission.

One palette PNG of class indices 0..18 per input image, named ``<stem>.png``, at the input's size
(or ``size``); optionally zipped with a single top folder, with a SUBMISSION.md beside the zip
saying what each file is, how to reproduce it and how many parameters the model has.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
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
from trainable.data import IMAGE_EXTS, read_image
from trainable.errors import UserError
from trainable.loop import resolve_device
from trainable.models import count_parameters
from trainable.tta import tta_probs

__all__ = ["MAX_ZIP_MB", "predict_folder"]

MAX_ZIP_MB = 30.0  # the challenge's upload limit
LIBRARIES = ("torch", "segmentation-models-pytorch", "timm", "albumentations", "numpy", "pillow", "ray", "optuna")


def _images(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise UserError(f"{folder}: image folder not found")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTS and not p.name.startswith("."))
    if not files:
        raise UserError(f"{folder}: no images ({', '.join(IMAGE_EXTS)}) to predict")
    return files


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
    out, images = Path(out), Path(images)
    if out.exists() and any(out.iterdir()) and not force:
        raise UserError(f"{out}: output folder exists and is not empty; choose another --out or pass --force")
    if zip_path and Path(zip_path).exists() and not force:
        raise UserError(f"{zip_path}: exists; choose another --zip or pass --force")
    files = _images(images)
    model, cfg, state = load_trained_model(checkpoint)
    norm = state.get("normalization")
    if not norm:
        raise UserError(f"{checkpoint}: the checkpoint has no normalisation statistics; retrain it with this version")
    device = resolve_device(cfg.train.device)
    model.to(device)
    scales = tuple(scales or cfg.train.tta_scales)
    flip = cfg.train.tta_flip if flip is None else flip
    transform = eval_transform(cfg.data.image_size, norm["mean"], norm["std"])

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}-"))
    try:
        for path in files:
            image = read_image(path)
            out_size = (size, size) if size else image.shape[:2]
            x = transform(image=image)["image"].unsqueeze(0).to(device)
            pred = tta_probs(model, x, scales, flip, out_size=out_size).argmax(1)[0].to(torch.uint8).cpu().numpy()
            png = Image.fromarray(np.ascontiguousarray(pred), mode="P")
            png.putpalette(PALETTE.flatten().tolist())
            png.save(tmp / f"{path.stem}.png")
        if out.exists():
            shutil.rmtree(out)  # only reached with --force
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise

    result = {"images": len(files), "out": str(out), "scales": list(scales), "flip": flip,
              "params": count_parameters(model), "zip": None}
    if zip_path:  # a submission: the zip and, beside it, what the challenge asks to hand in
        result["zip"] = str(_zip(out, Path(zip_path), max_zip_mb))
        _write_submission_md(result, checkpoint, cfg, Path(zip_path).parent)
    return result


def _zip(folder: Path, zip_path: Path, max_mb: float) -> Path:
    zip_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = zip_path.with_name(f".{zip_path.name}.tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
        for p in sorted(folder.glob("*.png")):
            z.write(p, arcname=f"{folder.name}/{p.name}")  # names we wrote ourselves: cannot escape the folder
    mb = tmp.stat().st_size / 2**20
    if mb > max_mb:
        tmp.unlink()
        raise UserError(f"{zip_path}: the zip would be {mb:.1f} MB, over the {max_mb:g} MB upload limit; "
                        f"the masks are kept in {folder}")
    os.replace(tmp, zip_path)
    return zip_path


def _write_submission_md(result: dict, checkpoint, cfg, where: Path) -> None:
    libs = "\n".join(f"- {k} {v}" for k, v in _library_versions().items())
    if sys.argv and sys.argv[0].endswith("launch.py"):
        command = " ".join(["python", "launch.py", *sys.argv[1:]])
    else:
        command = f"python launch.py --predict {checkpoint} --images IMAGES --out {result['out']}"
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
    (where / "SUBMISSION.md").write_text(text)
