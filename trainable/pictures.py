"""Faces, masks and predictions as pictures a person judges by eye.

``write_pictures`` predicts with one or more checkpoints (``trainable.val_predictions``) and draws:
the gallery (the same validation images for every model: image, truth, each model's prediction and
its errors), the worst images of the first model with their scores, and its confusion matrix.
``draw_mirrored`` draws the label audit's finding (the masks whose left/right labels are mirrored)
as a contact sheet. Masks are shown in the CelebAMask-HQ palette; every figure is computed first,
then drawn.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display on clusters and CI
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.patches import Patch, Rectangle

from trainable.classes import CLASSES, FLIP_PAIRS, NUM_CLASSES, PALETTE
from trainable.layout import MIRRORED_FILE, PICTURE_FILES
from trainable.metrics import SEARCH_METRICS

__all__ = ["CONFUSION_ORDER", "Pictures", "draw_confusion", "draw_gallery", "draw_mirrored",
           "error_map", "overlay", "row_normalised", "write_mirrored", "write_pictures"]

ERROR_COLOUR = np.array([255, 0, 0], np.uint8)
SHOWN, WORST = 8, 8  # images in a gallery, and in the worst-images sheet


def _order() -> tuple[int, ...]:
    """The classes in their own order, each right-hand class moved beside its left-hand one (they
    already are in CelebAMask-HQ's order): a left/right swap shows as a bright 2x2 block."""
    right = {r for _, r in FLIP_PAIRS}
    order: list[int] = []
    for c in range(NUM_CLASSES):
        if c not in right:
            order += [c, *(r for left, r in FLIP_PAIRS if left == c)]
    return tuple(order)


CONFUSION_ORDER = _order()


def overlay(image: np.ndarray, mask: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """``mask`` in the palette blended over ``image`` (RGB uint8 of the mask's size); background left bare."""
    colours = PALETTE[mask].astype(np.float32)
    out = image.astype(np.float32)
    face = mask > 0
    out[face] = (1 - alpha) * out[face] + alpha * colours[face]
    return out.round().astype(np.uint8)


def error_map(image: np.ndarray, truth: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """The image in dim grey with every wrongly predicted pixel in red."""
    grey = (image.astype(np.float32).mean(axis=2, keepdims=True) * 0.5 + 40).repeat(3, axis=2)
    out = grey.round().astype(np.uint8)
    out[pred != truth] = ERROR_COLOUR
    return out


def row_normalised(confusion: np.ndarray) -> np.ndarray:
    """Each truth row of a ``[truth, prediction]`` matrix as percentages of its pixels, in
    ``CONFUSION_ORDER``; a class absent from the truth gives a row of NaN."""
    conf = np.asarray(confusion, np.float64)[np.ix_(CONFUSION_ORDER, CONFUSION_ORDER)]
    totals = conf.sum(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(totals > 0, 100.0 * conf / totals, np.nan)


def _palette_legend(fig) -> None:
    handles = [Patch(facecolor=PALETTE[c] / 255, edgecolor="0.5", label=name) for c, name in enumerate(CLASSES)]
    handles.append(Patch(facecolor=ERROR_COLOUR / 255, label="wrong pixel (errors)"))
    columns = max(3, min(10, int(fig.get_figwidth() / 1.25)))  # as many as the width holds
    fig.legend(handles=handles, loc="lower center", ncol=columns, fontsize=7, frameon=False, handlelength=1.2)


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def draw_gallery(rows: Sequence[dict], path: Path, title: str, metric: str) -> Path:
    """One row per image: the image, its truth, then each model's prediction and errors. ``rows``: for
    each image, ``{label: Shown}`` with the same image under every label."""
    labels = list(rows[0])
    cols = 2 + 2 * len(labels)
    fmt = SEARCH_METRICS[metric].fmt
    height = 1.95 * len(rows) + (1.2 if cols > 4 else 1.6)  # a narrow legend takes more lines
    fig, axes = plt.subplots(len(rows), cols, figsize=(1.9 * cols, height), squeeze=False)
    for r, by_model in enumerate(rows):
        first = by_model[labels[0]]
        cells = [(first.image, first.name), (PALETTE[first.truth], "truth")]
        for label in labels:
            s = by_model[label]
            cells += [(PALETTE[s.pred], f"{label}: {s.score:{fmt}}"), (error_map(s.image, s.truth, s.pred),
                                                                       f"{label} errors")]
        for ax, (picture, caption) in zip(axes[r], cells):
            ax.imshow(picture, interpolation="nearest")
            ax.set_title(caption, fontsize=8)
            ax.axis("off")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0.75 / height, 1, 1 - 0.4 / height))  # room for the legend and the title
    _palette_legend(fig)
    return _save(fig, path)


def draw_confusion(confusion: np.ndarray, path: Path, title: str) -> Path:
    """The row-normalised confusion matrix (percent of each true class's pixels), class names on both
    axes, the left/right pairs framed."""
    data = row_normalised(confusion)
    names = [CLASSES[c] for c in CONFUSION_ORDER]
    fig, ax = plt.subplots(figsize=(9.5, 8.5))
    im = ax.imshow(data, cmap="Blues", vmin=0, vmax=100)
    for i in range(len(names)):
        for j in range(len(names)):
            v = data[i, j]
            if np.isfinite(v) and v >= 0.5:
                ax.text(j, i, f"{v:.0f}", ha="center", va="center", fontsize=6.5,
                        color="white" if v > 60 else "black")
    for left, _ in FLIP_PAIRS:  # a swap of the pair lies in the block's off-diagonal cells
        at = CONFUSION_ORDER.index(left)
        ax.add_patch(Rectangle((at - 0.5, at - 0.5), 2, 2, fill=False, edgecolor="tab:red", lw=1.5))
    absent = [i for i in range(len(names)) if not np.isfinite(data[i]).any()]
    ax.set_xticks(range(len(names)), names, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(len(names)), [n + (" (absent)" if i in absent else "") for i, n in enumerate(names)],
                  fontsize=8)
    ax.set(xlabel="predicted class", ylabel="true class")
    ax.set_title(title, fontsize=10)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="% of the true class's pixels")
    fig.tight_layout()
    return _save(fig, path)


def _mark_sides(ax, mask: np.ndarray) -> None:
    """An L or R at the centre of each left/right class of ``mask`` (the subject's left and right)."""
    for left, right in FLIP_PAIRS:
        for c, letter in ((left, "L"), (right, "R")):
            ys, xs = np.nonzero(mask == c)
            if len(xs):
                ax.text(xs.mean(), ys.mean(), letter, ha="center", va="center", fontsize=8, fontweight="bold",
                        color="white", bbox={"boxstyle": "circle,pad=0.15", "fc": "black", "alpha": 0.6, "lw": 0})


def draw_mirrored(faces: Sequence[tuple[str, np.ndarray, np.ndarray]], path: Path, total: int, masks: int,
                  convention: str, reference: tuple[str, np.ndarray, np.ndarray] | None = None) -> Path:
    """The contact sheet of the masks the audit found mirrored: each image with its mask overlaid and
    every left/right class marked L or R; ``reference`` (first, framed in green) is a mask of the data
    set's convention. ``faces``: (file name, RGB image, mask) of the first of ``total`` mirrored masks
    among ``masks``; ``convention``: the side of the image the subject's left lies on in the others."""
    cells = ([(*reference, True)] if reference else []) + [(*f, False) for f in faces]
    cols = min(6, len(cells))
    rows = -(-len(cells) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2.2 * cols, 2.4 * rows + 1.1), squeeze=False)
    for ax, (name, image, mask, is_reference) in zip(axes.flat, cells):
        ax.imshow(overlay(image, mask), interpolation="nearest")
        _mark_sides(ax, mask)
        ax.set_title(("convention: " if is_reference else "") + name, fontsize=7,
                     color="tab:green" if is_reference else "black")
        ax.set_xticks([])
        ax.set_yticks([])
        for spine in ax.spines.values():
            spine.set(edgecolor="tab:green" if is_reference else "tab:red", linewidth=2)
    for ax in list(axes.flat)[len(cells):]:
        ax.axis("off")
    more = f"; the first {len(faces)} shown, all listed in {MIRRORED_FILE}" if total > len(faces) else ""
    fig.suptitle(f"{total} of {masks} training masks have their left/right labels mirrored{more}\n"
                 f"L, R: the subject's left and right classes. In the other masks L lies on the image's "
                 f"{convention}; here it lies on the {'left' if convention == 'right' else 'right'}", fontsize=9)
    fig.tight_layout()
    return _save(fig, path)


def _thumbnail(image: np.ndarray, mask: np.ndarray, side: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """A pair brought down to at most ``side`` pixels for a contact sheet (the mask by nearest class)."""
    import cv2

    h, w = mask.shape
    if max(h, w) <= side:
        return image, mask
    size = (round(w * side / max(h, w)), round(h * side / max(h, w)))
    return (cv2.resize(image, size, interpolation=cv2.INTER_AREA),
            cv2.resize(mask, size, interpolation=cv2.INTER_NEAREST))


def write_mirrored(images: Sequence[str], masks: Sequence[str], orientations: Sequence[int], path: Path,
                   limit: int = 23) -> Path | None:
    """The contact sheet of the masks among ``masks`` whose ``orientations`` (``audit.orientation``) the
    audit finds mirrored, the first ``limit`` of them beside one mask of the majority's convention;
    None (nothing drawn) when none is mirrored."""
    from trainable.audit import mirrored_flags
    from trainable.decode import decode_pair

    flags = mirrored_flags(orientations)
    found = [i for i, f in enumerate(flags) if f]
    if not found:
        return None
    majority = -orientations[found[0]]
    reference = next((i for i, o in enumerate(orientations) if o == majority), None)

    def face(i: int) -> tuple[str, np.ndarray, np.ndarray]:
        image, mask = decode_pair(images[i], masks[i], 0, True)  # the image at its mask's size
        return (Path(masks[i]).name, *_thumbnail(image, mask))

    return draw_mirrored([face(i) for i in found[:limit]], path, len(found), len(masks),
                         "right" if majority > 0 else "left", face(reference) if reference is not None else None)


@dataclass(frozen=True)
class Pictures:
    """What ``write_pictures`` drew, by role (``layout.PICTURE_FILES``)."""

    paths: dict[str, Path]
    shown: int  # images in the gallery


def write_pictures(checkpoints: dict[str, Path], out: Path, metric: str, title: str,
                   shown: int = SHOWN, worst: int = WORST) -> Pictures:
    """The gallery of ``checkpoints`` (label -> checkpoint, the model whose worst images and confusion
    are drawn first), its worst images and its confusion matrix, into ``out``."""
    from trainable.val_predictions import Predictor, spread_indices

    predictors = {label: Predictor(path) for label, path in checkpoints.items()}
    first_label, first = next(iter(predictors.items()))
    scored = first.score_images(metric)
    picked = spread_indices(len(scored.names), shown)
    by_label = {label: p.show_images(picked, metric) for label, p in predictors.items()}
    rows = [{label: by_label[label][r] for label in by_label} for r in range(len(picked))]
    name = SEARCH_METRICS[metric].name
    paths = {"gallery": draw_gallery(rows, out / PICTURE_FILES["gallery"], f"{title}: {len(picked)} of "
                                     f"{len(scored.names)} validation images ({name} of each image)", metric)}
    low = scored.worst(worst)
    paths["worst"] = draw_gallery([{first_label: s} for s in first.show_images(low, metric)],
                                  out / PICTURE_FILES["worst"], f"{title}: the {len(low)} validation images "
                                  f"{first_label} scores worst on ({name})", metric)
    paths["confusion"] = draw_confusion(scored.confusion, out / PICTURE_FILES["confusion"],
                                        f"{title}, {first_label}: confusion on {len(scored.names)} validation "
                                        f"images (row-normalised)")
    return Pictures(paths, len(picked))
