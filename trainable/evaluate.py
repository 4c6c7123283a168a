"""Score a folder of predicted masks against a folder of true masks as the graders do: the course's
mIoU and the 2025 edition's per-image F-score.

    python launch.py evaluate PRED_DIR TRUTH_DIR      (or python -m trainable.evaluate PRED_DIR TRUTH_DIR)

Predictions are index PNGs named like the true masks (``<stem>.png``). A prediction folder that
holds a single sub-folder (as a submission zip unpacks), or ``masks/`` beside ``solution/`` (a 2025
submission), is descended into. Every true mask needs a
prediction of the same size; extra predictions are ignored with a note.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

from trainable.classes import CLASSES, NUM_CLASSES
from trainable.decode import read_mask
from trainable.errors import UserError, cli_errors
from trainable.folders import DATA_LAYOUTS
from trainable.metrics import METRICS, SegMetrics, compute_metrics, confusion_matrix, image_fscores

__all__ = ["evaluate_folders", "format_report", "main", "report"]


def _mask_files(folder: Path, what: str) -> dict[str, Path]:
    if not folder.is_dir():
        raise UserError(f"{folder}: {what} folder not found")
    entries = [p for p in folder.iterdir() if not p.name.startswith(".")]
    if {p.name for p in entries} == {"masks", "solution"} and (folder / "masks").is_dir():  # a 2025 submission
        return _mask_files(folder / "masks", what)
    if len(entries) == 1 and entries[0].is_dir():  # the course evaluator descends into a lone folder
        return _mask_files(entries[0], what)
    files = {p.stem: p for p in entries if p.suffix.lower() == ".png" and p.is_file()}
    if not files:
        raise UserError(f"{folder}: no PNG masks in the {what} folder")
    return files


def _read(path: Path) -> np.ndarray:
    try:
        return read_mask(path)
    except (OSError, ValueError) as e:
        raise UserError(f"{path}: {e}") from None


def evaluate_folders(pred_dir: str | Path, truth_dir: str | Path) -> tuple[SegMetrics, list[str], int]:
    """Metrics over every true mask and its prediction, notes (e.g. ignored extra files), and the
    number of images scored."""
    preds = _mask_files(Path(pred_dir), "prediction")
    truths = _mask_files(Path(truth_dir), "truth")
    missing = [s for s in truths if s not in preds]
    if missing:
        shown = ", ".join(f"{s}.png" for s in sorted(missing)[:5])
        raise UserError(f"{pred_dir}: {len(missing)} of {len(truths)} masks have no prediction "
                        f"(e.g. {shown}); predict every image of the set")
    extra = len(preds.keys() - truths.keys())
    notes = [f"{extra} predictions without a true mask were ignored"] if extra else []
    conf = np.zeros((NUM_CLASSES, NUM_CLASSES), np.int64)
    fscores = []
    for stem, truth_path in sorted(truths.items()):
        pred, truth = _read(preds[stem]), _read(truth_path)
        if pred.shape != truth.shape:
            raise UserError(
                f"{preds[stem]}: prediction is {pred.shape[1]}x{pred.shape[0]} but the true mask is "
                f"{truth.shape[1]}x{truth.shape[0]}; predict at the mask's size (e.g. --size {truth.shape[0]})")
        for arr, path in ((pred, preds[stem]), (truth, truth_path)):
            if arr.max(initial=0) >= NUM_CLASSES:
                raise UserError(f"{path}: values above {NUM_CLASSES - 1}; masks must hold class indices 0..18")
        image = confusion_matrix(pred, truth)
        conf += image
        fscores.append(image_fscores(image)[0])
    return replace(compute_metrics(conf), fscore=float(np.mean(fscores))), notes, len(truths)


def format_report(m: SegMetrics, n_images: int | None = None) -> str:
    """The mIoU summary and per-class table as printed by the command line."""
    lines = [] if n_images is None else [f"{'images':<14}{n_images:>8}"]
    lines += [f"{'mIoU':<14}{m.miou:>8.3f}", f"{'F-score':<14}{m.fscore:>8.4f}  (2025: per image, 0..1)",
              f"{METRICS['val_acc'].name:<14}{m.acc:>8.3f}", f"{'mean F1':<14}{m.mean_f1:>8.3f}"]
    if m.absent:
        lines.append(f"note: {len(m.absent)} classes appear in neither prediction nor truth ({', '.join(m.absent)}): "
                     f"the course evaluator's mean over all 19 classes is NaN; mIoU above is over the other "
                     f"{NUM_CLASSES - len(m.absent)}")
    lines.append("")
    lines.append(f"{'class':<14}{'IoU':>8}{'F1':>8}")
    for name, iou, f1 in zip(CLASSES, m.iou, m.f1, strict=False):
        lines.append(f"{name:<14}{iou:>8.3f}{f1:>8.3f}" if np.isfinite(iou) else f"{name:<14}{'absent':>8}{'':>8}")
    return "\n".join(lines)


def report(pred_dir: str | Path, truth_dir: str | Path) -> str:
    """What the command line prints: the notes, then ``format_report``."""
    metrics, notes, images = evaluate_folders(pred_dir, truth_dir)
    return "\n".join([*(f"note: {note}" for note in notes), format_report(metrics, images)])


@cli_errors
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m trainable.evaluate", description=__doc__.split("\n")[0])
    p.add_argument("pred_dir", help="folder of predicted index PNGs (or one holding a single sub-folder)")
    p.add_argument("truth_dir", help=f"folder of true masks, e.g. {DATA_LAYOUTS['course'].mask_dirs('DATA', 'val')[0]}")
    args = p.parse_args(argv)
    print(report(args.pred_dir, args.truth_dir))
    return 0


if __name__ == "__main__":
    sys.exit(main())
