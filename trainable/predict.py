"""Predict a folder of images with a trained checkpoint and package the submission.

One palette PNG of class indices 0..18 per input image, named ``<stem>.png``, at the input's size
(or ``size``); optionally zipped with a single top folder, with a SUBMISSION.md beside the zip
saying what each file is, how to reproduce it and how many parameters the model has.

``submission=NAME`` writes an edition's layout (``trainable.challenges``) and checks the model
against its rules first: ``masks-folder`` is the above; ``masks-and-solution`` (2025) is
``masks/<stem>.png`` (single-channel index PNGs) and ``solution/`` with ``ckpt.pth``,
``requirements.txt`` and the standalone ``run.py`` (``trainable.solution``, which reproduces
every mask), zipped at the top level.
"""

from __future__ import annotations

import shutil
import sys
import zipfile
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import torch
from PIL import Image

from trainable import solution
from trainable.build import load_trained_model
from trainable.challenges import Challenge, get_challenge
from trainable.classes import CLASSES
from trainable.config import Config, ConfigError, parse_value
from trainable.decode import IMAGE_EXTS, list_images, read_image, write_mask
from trainable.errors import UserError
from trainable.layout import SOLUTION_FILES, SUBMISSION_NOTE, replacing
from trainable.loop import resolve_device
from trainable.models import SegmentationNet, count_parameters, smp_spec
from trainable.solution import FORMAT, predict_image
from trainable.tta import FLIP_CHANNELS

__all__ = ["MAX_ZIP_MB", "check_rules", "format_result", "parse_scales", "predict_folder", "prediction_images",
           "solution_checkpoint"]

MAX_ZIP_MB = 30.0  # the challenge's upload limit
# what the standalone run.py imports (trainable.solution), and timm, which builds smp's "tu-" encoders
SOLUTION_PACKAGES = ("torch", "segmentation-models-pytorch", "timm", "albumentations", "numpy", "pillow")
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


def _library_versions() -> dict[str, str]:
    out = {}
    for name in LIBRARIES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            continue
    return out


def solution_checkpoint(model: SegmentationNet, cfg: Config, norm: dict, scales: Sequence[float], flip: bool) -> dict:
    """What ``solution/ckpt.pth`` holds: everything the standalone ``run.py`` needs, as tensors and plain
    values (it loads with ``weights_only=True``). The auxiliary head trains only and is left out."""
    cls, kwargs = smp_spec(cfg.model)
    return {"format": FORMAT, "arch": cls.__name__, "arch_kwargs": kwargs, "state_dict": model.net.state_dict(),
            "image_size": cfg.data.image_size, "mean": list(norm["mean"]), "std": list(norm["std"]),
            "tta_scales": [float(s) for s in scales], "tta_flip": bool(flip),
            "flip_channels": FLIP_CHANNELS.tolist(), "classes": list(CLASSES)}


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


def check_rules(challenge: Challenge, cfg: Config, params: int, what: str | Path) -> None:
    """Refuse a model (``what``: its checkpoint or configuration) of ``params`` trainable parameters
    over the edition's budget, or trained from weights the edition forbids."""
    if challenge.max_params and params > challenge.max_params:
        raise UserError(f"{what}: the model has {params:,} trainable parameters; {challenge.name} allows "
                        f"at most {challenge.max_params:,}; retrain a smaller one (search --challenge "
                        f"{challenge.name} keeps to the budget); nothing was written")
    if not challenge.pretrained and cfg.model.pretrained != "none":
        raise UserError(f"{what}: the model was trained from {cfg.model.pretrained} weights, but "
                        f"{challenge.name} allows training from scratch only; retrain with model.pretrained=none; "
                        f"nothing was written")


def prediction_images(cfg: Config, what: str | Path) -> Path:
    """The prediction set of ``cfg``'s data: its unlabeled ``test`` split."""
    from trainable.data import DataError, find_split
    from trainable.sources import data_root

    try:
        return find_split(data_root(cfg.data), "test", with_masks=False)[0]
    except DataError:
        raise UserError(f"{what}: its data ({cfg.data.root or 'the synthetic set'}) has no test split "
                        f"(test/images or test/test_image); pass the images to predict with --images") from None


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
    layout = challenge.submission if challenge else "masks-folder"

    # the masks go into a temporary folder that replaces ``out`` once all are written: a refused image
    # or an interrupt leaves ``out`` as it was (an existing one is only reached with --force)
    with replacing(out, replace_folder=True) as tmp:
        masks = tmp / "masks" if layout == "masks-and-solution" else tmp
        masks.mkdir(parents=True)
        for path in files:
            try:
                image = read_image(path)
            except (OSError, ValueError, Image.DecompressionBombError) as e:
                raise UserError(f"{path}: unreadable or truncated image ({e}); re-export or remove it; "
                                f"nothing was written") from None
            pred = predict_image(model, spec, image, device, out_size=(size, size) if size else None)
            if layout == "masks-and-solution":
                solution.write_mask(pred, masks / f"{path.stem}.png")  # what the standalone run.py writes
            else:
                write_mask(pred, masks / f"{path.stem}.png")
        if layout == "masks-and-solution":
            (tmp / "solution").mkdir()
            torch.save({**spec, "state_dict": {k: v.cpu() for k, v in spec["state_dict"].items()}},
                       tmp / "solution" / SOLUTION_FILES["weights"])
            (tmp / "solution" / SOLUTION_FILES["requirements"]).write_text(_requirements())
            shutil.copyfile(solution.__file__, tmp / "solution" / SOLUTION_FILES["script"])

    result = {"images": len(files), "out": str(out), "scales": list(scales), "flip": flip, "params": params,
              "zip": None, "notes": notes, "submission": challenge.name if challenge else None, "layout": layout}
    if zip_path:  # a submission: the zip and, beside it, what the challenge asks to hand in
        result["zip"] = str(_zip(out, zip_path, max_zip_mb, top_level=layout == "masks-and-solution"))
        _write_submission_md(result, checkpoint, cfg, zip_path.parent)
    return result


def _zip(folder: Path, zip_path: Path, max_mb: float, top_level: bool = False) -> Path:
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


def _write_submission_md(result: dict, checkpoint, cfg, where: Path) -> None:
    libs = "\n".join(f"- {k} {v}" for k, v in _library_versions().items())
    if sys.argv and sys.argv[0].endswith("launch.py"):
        command = " ".join(["python", "launch.py", *sys.argv[1:]])
    else:
        command = f"python launch.py predict {checkpoint} --images IMAGES --out {result['out']}"
    weights = "scratch" if cfg.model.pretrained == "none" else cfg.model.pretrained
    scales = ", ".join(f"{s:g}" for s in result["scales"])
    zipped = f"`{Path(result['zip']).name}`" if result["zip"] else "(no zip)"
    if result["layout"] == "masks-and-solution":
        rows = [
            ("`masks/<stem>.png`", "predicted mask per test image: single-channel 8-bit PNG, class indices 0..18, "
                                   "same stem as the image"),
            (f"`solution/{SOLUTION_FILES['weights']}`", "weights, network construction, normalisation and TTA "
                                                        "(loads with `weights_only=True`)"),
            (f"`solution/{SOLUTION_FILES['requirements']}`", "the packages run.py imports, pinned"),
            (f"`solution/{SOLUTION_FILES['script']}`", "`python3 run.py --input IMG --output MASK --weights "
                                                       "ckpt.pth` reproduces each mask, without this repository"),
            (zipped, f"`masks/` and `solution/` at the top level, for upload ({result['submission']})"),
        ]
    else:
        rows = [
            ("`" + Path(result["out"]).name + "/<stem>.png`",
             "predicted mask per test image: 8-bit palette PNG, class indices 0..18, same stem as the image"),
            (zipped, "the masks zipped under one top folder, for upload"),
            (f"`{Path(str(checkpoint)).name}`", "the trained weights (torch state dict, loads with "
                                                "`weights_only=True`)"),
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
