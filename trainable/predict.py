"""Predict a folder of images with a trained checkpoint.

One palette PNG of class indices 0..18 per input image, named ``<stem>.png``, at the input's size
(or ``size``); optionally zipped with a single top folder, with a SUBMISSION.md beside the zip
saying what each file is, how to reproduce it and how many parameters the model has.

``submission=NAME`` checks the model against an edition's rules first and writes the layout it
takes (``trainable.submission``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from PIL import Image

from trainable.challenges import get_challenge
from trainable.checkpoints import load_trained_model, solution_checkpoint
from trainable.config import Config, ConfigError, parse_value
from trainable.decode import IMAGE_EXTS, list_images, read_image
from trainable.errors import UserError
from trainable.layout import SUBMISSION_NOTE, replacing
from trainable.loop import resolve_device
from trainable.models import count_parameters
from trainable.solution import predict_image
from trainable.submission import (
    DEFAULT_LAYOUT,
    MAX_ZIP_MB,
    check_rules,
    get_layout,
    write_submission_md,
    zip_submission,
)

__all__ = ["format_result", "parse_scales", "predict_folder", "prediction_images"]



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
    if result.get("submission"):
        lines.append(f"submission: {result['submission']} ({result['layout']}), {result['params']:,} trainable "
                     f"parameters within its rules")
    return lines + ([f"zip: {result['zip']}"] if result["zip"] else [])


def _images(folder: Path, notes: list[str]) -> list[Path]:
    """The images to predict, sorted; files that are not images (or hidden) are noted and skipped."""
    if not folder.is_dir():
        raise UserError(f"{folder}: image folder not found; pass an existing folder with --images")
    files = list(list_images(folder, notes).values())
    if not files:
        raise UserError(f"{folder}: no images ({', '.join(IMAGE_EXTS)}) to predict")
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


def prediction_images(cfg: Config, what: str | Path) -> Path:
    """The prediction set of ``cfg``'s data: its unlabeled ``test`` split."""
    from trainable.folders import DataError, find_split, split_folders
    from trainable.sources import data_root

    try:
        return find_split(data_root(cfg.data), "test", with_masks=False)[0]
    except DataError:
        raise UserError(f"{what}: its data ({cfg.data.root or 'the synthetic set'}) has no test split "
                        f"({split_folders('test')}); pass the images to predict with --images") from None


@torch.no_grad()
def predict_folder(checkpoint: str | Path, images: str | Path | None, out: str | Path,
                   scales: Sequence[float] | None = None, flip: bool | None = None, size: int | None = None,
                   zip_path: str | Path | None = None, force: bool = False, max_zip_mb: float = MAX_ZIP_MB,
                   submission: str | None = None) -> dict:
    """Write one mask per image into ``out``; scales/flip default to the checkpoint's configured TTA.

    ``images`` defaults to the test split of the checkpoint's data. ``submission`` (a challenge name)
    writes that edition's layout into ``out`` and zips it (to ``zip_path``, default ``<out>.zip``),
    after checking the model against its rules.
    """
    challenge = get_challenge(submission, flag="--submission") if submission else None
    if challenge:
        max_zip_mb = challenge.max_zip_mb
        zip_path = zip_path or f"{Path(out).expanduser().resolve()}.zip"
    model, cfg, state = load_trained_model(checkpoint)
    params = count_parameters(model.net if challenge else model)  # a submission ships no auxiliary head
    if challenge:
        check_rules(challenge, cfg, params, checkpoint)
    images = Path(images).expanduser() if images else prediction_images(cfg, checkpoint)
    # ".." and symlinks resolved: the folder replaced, and the zip's top folder, are the real ones
    out = Path(out).expanduser().resolve()
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
    norm = state.get("normalization")
    if not norm:
        raise UserError(f"{checkpoint}: the checkpoint has no normalisation statistics; retrain it with this version")
    device = resolve_device(cfg.train.device)
    model.to(device)
    scales = tuple(scales or cfg.train.tta_scales)
    flip = cfg.train.tta_flip if flip is None else flip
    spec = solution_checkpoint(model, cfg, norm, scales, flip)
    layout_name = challenge.submission if challenge else DEFAULT_LAYOUT
    layout = get_layout(layout_name)

    # the masks go into a temporary folder that replaces ``out`` once all are written: a refused image
    # or an interrupt leaves ``out`` as it was (an existing one is only reached with --force)
    with replacing(out, replace_folder=True) as tmp:
        masks = tmp / layout.masks
        masks.mkdir(parents=True)
        for path in files:
            try:
                image = read_image(path)
            except (OSError, ValueError, Image.DecompressionBombError) as e:
                raise UserError(f"{path}: unreadable or truncated image ({e}); re-export or remove it; "
                                f"nothing was written") from None
            pred = predict_image(model, spec, image, device, out_size=(size, size) if size else None)
            layout.write_mask(pred, masks / f"{path.stem}.png")
        layout.finish(tmp, spec)

    result = {"images": len(files), "out": str(out), "scales": list(scales), "flip": flip, "params": params,
              "zip": None, "notes": notes, "submission": challenge.name if challenge else None,
              "layout": layout_name}
    if zip_path:  # a submission: the zip and, beside it, what the challenge asks to hand in
        result["zip"] = str(zip_submission(out, zip_path, max_zip_mb, top_level=layout.top_level))
        write_submission_md(result, checkpoint, cfg, zip_path.parent)
    return result


