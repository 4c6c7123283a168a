"""The built-in synthetic face-parsing set.

Procedurally drawn faces written as real JPEG and palette-PNG files, covering all 19 classes, in
the course layout (``train/train_image/0.jpg``, ``train/train_mask/0.png``, ``val/...``,
``test/test_image``), the 2025 release's (``train/images`` + ``train/masks``, unlabeled
``test/images``) or the full CelebAMask-HQ release's (per-part binary PNGs under images twice their
size, with or without the files of the official split). The subject's left eye, brow and ear are
drawn on the image's right, as in CelebAMask-HQ, so a horizontal flip that does not swap the
labels teaches the wrong side.

Validation and test images are harder than training images in the ways real data is: more head
rotation and scale change, colour casts and overlaid occluders. That gap is what rotation, colour
jitter, rescale-crop and cutout augmentations can close, which makes a search over them
meaningful even on this data.

    python -m trainable.synthetic OUT_DIR [--n-train N --n-val N --n-test N --size PX --seed S]
                                          [--layout course|2025|release [--no-split-files]]
"""

from __future__ import annotations

import argparse
import fcntl
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from trainable.classes import FLIP_LUT
from trainable.decode import write_mask
from trainable.folders import DATA_LAYOUTS
from trainable.layout import replacing
from trainable.release import ANNO_DIR, IMAGE_DIR, MAPPING_FILE, PARTITION_FILE, PARTS
from trainable.scan import cache_root

__all__ = ["LAYOUTS", "Difficulty", "draw_face", "ensure_synthetic", "generate", "main"]

SKIN_TONES = np.array([[198, 224, 255], [160, 190, 235], [120, 160, 210], [90, 125, 175],
                       [60, 90, 140], [170, 205, 250]], dtype=np.float32)  # BGR
HAIR_COLOURS = np.array([[20, 20, 25], [30, 45, 80], [60, 90, 140], [120, 170, 210],
                         [170, 170, 170], [40, 40, 120]], dtype=np.float32)  # BGR


@dataclass(frozen=True)
class Difficulty:
    """How far a split's images stray from the canonical upright, evenly lit face."""

    max_rotation: float  # degrees, uniform in +-
    scale_range: tuple[float, float]  # face size factor
    shift: float  # centre shift as a fraction of the image side
    colour_cast: float  # per-channel gain spread and brightness/contrast spread
    occluder_p: float  # probability of overlaid lines / patches (labels unchanged)


EASY = Difficulty(max_rotation=6.0, scale_range=(0.9, 1.1), shift=0.03, colour_cast=0.05, occluder_p=0.0)
HARD = Difficulty(max_rotation=35.0, scale_range=(0.72, 1.28), shift=0.08, colour_cast=0.35, occluder_p=0.6)


def _smooth_field(rng: np.random.Generator, size: int, cells: int, lo: float, hi: float) -> np.ndarray:
    grid = rng.uniform(lo, hi, size=(cells, cells, 3)).astype(np.float32)
    return cv2.resize(grid, (size, size), interpolation=cv2.INTER_CUBIC)


def draw_face(rng: np.random.Generator, size: int, difficulty: Difficulty,
              accessories: frozenset[str] = frozenset()) -> tuple[np.ndarray, np.ndarray]:
    """Draw one face; returns a BGR uint8 image and a uint8 class-index mask, both ``size`` square.

    ``accessories`` forces some of glasses, hat, earring, necklace, open_mouth on; each may also
    appear by chance.
    """
    c = 2 * size  # draw on a larger canvas so rotation never exposes an edge
    img = (_smooth_field(rng, c, 4, 40, 220) + rng.normal(0, 6, (c, c, 3))).astype(np.float32)
    mask = np.zeros((c, c), np.uint8)

    k = rng.uniform(*difficulty.scale_range)
    a, b = 0.2 * size * k, 0.26 * size * k  # face half-width / half-height
    cx, cy = c / 2, c / 2 - 0.04 * size
    skin = SKIN_TONES[rng.integers(len(SKIN_TONES))] + rng.normal(0, 8, 3)
    hair = HAIR_COLOURS[rng.integers(len(HAIR_COLOURS))] + rng.normal(0, 8, 3)
    cloth = rng.uniform(30, 230, 3)
    lw = max(1, round(0.05 * a))  # thin-structure width

    def has(name: str, p: float) -> bool:
        return name in accessories or rng.random() < p

    def paint(label: int, colour, shape: str, *args, thickness: int = -1) -> None:
        col = tuple(float(x) for x in np.clip(colour, 0, 255))
        if shape == "fillPoly":  # fillPoly takes no thickness
            cv2.fillPoly(img, *args, col, cv2.LINE_AA)
            cv2.fillPoly(mask, *args, label, cv2.LINE_8)
            return
        getattr(cv2, shape)(img, *args, col, thickness, cv2.LINE_AA)
        getattr(cv2, shape)(mask, *args, label, thickness, cv2.LINE_8)

    def ell(x, y, ax, ay, angle=0.0, start=0, end=360):
        return ((round(x), round(y)), (max(1, round(ax)), max(1, round(ay))), angle, start, end)

    long_hair = rng.random() < 0.5
    # back hair, then neck, clothes and ears, then the face and its parts, front to back order
    paint(13, hair, "ellipse", *ell(cx, cy - 0.12 * b, 1.18 * a, 1.08 * b))
    if long_hair:
        pts = np.array([[cx - 1.15 * a, cy - 0.1 * b], [cx + 1.15 * a, cy - 0.1 * b],
                        [cx + 1.25 * a, cy + 1.25 * b], [cx - 1.25 * a, cy + 1.25 * b]], np.int32)
        paint(13, hair, "fillPoly", [pts])
    paint(17, skin * 0.85, "rectangle", (round(cx - 0.42 * a), round(cy + 0.5 * b)),
          (round(cx + 0.42 * a), round(cy + 1.5 * b)))
    paint(18, cloth, "ellipse", *ell(cx, cy + 2.15 * b, 2.1 * a, 0.9 * b))
    if has("necklace", 0.15):
        paint(16, (60, 200, 230), "ellipse", *ell(cx, cy + 0.95 * b, 0.42 * a, 0.32 * b, 0, 20, 160),
              thickness=max(2, lw))
    ear_y = cy + 0.02 * b
    paint(9, skin * 0.92, "ellipse", *ell(cx - 0.98 * a, ear_y, 0.16 * a, 0.24 * b))  # subject's right
    paint(8, skin * 0.92, "ellipse", *ell(cx + 0.98 * a, ear_y, 0.16 * a, 0.24 * b))  # subject's left
    if has("earring", 0.2):
        sides = [-1, 1] if rng.random() < 0.6 else [rng.choice([-1, 1])]
        for s in sides:
            paint(15, (40, 210, 240), "circle", (round(cx + s * 1.0 * a), round(ear_y + 0.3 * b)),
                  max(2, round(0.07 * a)))
    paint(1, skin, "ellipse", *ell(cx, cy, a, b))
    paint(2, skin * 0.8, "fillPoly", [np.array([[cx, cy - 0.1 * b], [cx - 0.14 * a, cy + 0.25 * b],
                                               [cx + 0.14 * a, cy + 0.25 * b]], np.int32)])
    eye_y, brow_y = cy - 0.12 * b, cy - 0.33 * b
    for s, eye, brow in ((-1, 5, 7), (1, 4, 6)):  # image left = subject's right
        ex = cx + s * 0.42 * a
        paint(eye, (245, 245, 245), "ellipse", *ell(ex, eye_y, 0.2 * a, 0.09 * b))
        cv2.circle(img, (round(ex), round(eye_y)), max(1, round(0.06 * a)), (40, 30, 20), -1, cv2.LINE_AA)
        paint(brow, hair * 0.8, "ellipse", *ell(ex, brow_y, 0.25 * a, 0.05 * b, s * 8))
    mouth_y = cy + 0.52 * b
    if has("open_mouth", 0.5):
        paint(10, (40, 30, 90), "ellipse", *ell(cx, mouth_y, 0.26 * a, 0.08 * b))
        gap = 0.07 * b
    else:
        gap = 0.0
    lips = np.array([110, 100, 200]) + rng.normal(0, 15, 3)
    paint(11, lips, "ellipse", *ell(cx, mouth_y - gap / 2, 0.3 * a, 0.07 * b, 0, 180, 360))
    paint(12, lips * 0.9, "ellipse", *ell(cx, mouth_y + gap / 2, 0.27 * a, 0.09 * b, 0, 0, 180))
    paint(13, hair, "ellipse", *ell(cx, cy - 0.78 * b, 0.95 * a, 0.36 * b, 0, 180, 360))  # fringe
    if has("glasses", 0.2):
        for s in (-1, 1):
            paint(3, (30, 30, 30), "circle", (round(cx + s * 0.42 * a), round(eye_y)),
                  max(3, round(0.28 * a)), thickness=max(1, lw))
        paint(3, (30, 30, 30), "line", (round(cx - 0.16 * a), round(eye_y)),
              (round(cx + 0.16 * a), round(eye_y)), thickness=max(1, lw))
    if has("hat", 0.15):
        hat = rng.uniform(20, 235, 3)
        paint(14, hat, "ellipse", *ell(cx, cy - 0.62 * b, 1.1 * a, 0.62 * b, 0, 180, 360))
        paint(14, hat * 0.8, "rectangle", (round(cx - 1.3 * a), round(cy - 0.7 * b)),
              (round(cx + 1.3 * a), round(cy - 0.58 * b)))

    # light from one side, then rotate, shift and crop the face into the output square
    shade = np.linspace(rng.uniform(0.8, 1.0), rng.uniform(1.0, 1.15), c, dtype=np.float32)
    img *= shade[None, :, None]
    angle = rng.uniform(-difficulty.max_rotation, difficulty.max_rotation)
    m = cv2.getRotationMatrix2D((cx, cy), angle, 1.0)
    m[:, 2] += rng.uniform(-difficulty.shift, difficulty.shift, 2) * size - (cx - size / 2, cy - size / 2)
    img = cv2.warpAffine(img, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    mask = cv2.warpAffine(mask, m, (size, size), flags=cv2.INTER_NEAREST, borderValue=0)

    img = _photometric(rng, img, difficulty)
    if rng.random() < difficulty.occluder_p:
        img = _occlude(rng, img)
    return np.clip(img, 0, 255).astype(np.uint8), mask


def _photometric(rng: np.random.Generator, img: np.ndarray, d: Difficulty) -> np.ndarray:
    s = d.colour_cast
    gain = rng.uniform(1 - s, 1 + s, 3).astype(np.float32)
    contrast = rng.uniform(1 - s, 1 + s)
    mean = img.mean()
    img = (img - mean) * contrast + mean * gain + rng.uniform(-60, 60) * s
    if rng.random() < s:  # washed-out colour, as in faded or badly white-balanced photos
        grey = img.mean(axis=2, keepdims=True)
        img = grey + (img - grey) * rng.uniform(0.2, 0.7)
    return img + rng.normal(0, 3, img.shape).astype(np.float32)


def _occlude(rng: np.random.Generator, img: np.ndarray) -> np.ndarray:
    """Overlay lines and patches on the image only: labels keep what is underneath."""
    size = img.shape[0]
    for _ in range(rng.integers(1, 4)):
        colour = tuple(float(x) for x in rng.uniform(0, 255, 3))
        if rng.random() < 0.5:
            p1, p2 = rng.integers(0, size, 2), rng.integers(0, size, 2)
            cv2.line(img, tuple(int(v) for v in p1), tuple(int(v) for v in p2), colour,
                     max(1, size // 40), cv2.LINE_AA)
        else:
            w = rng.integers(size // 10, size // 4, 2)
            x, y = rng.integers(0, size - w)
            cv2.rectangle(img, (int(x), int(y)), (int(x + w[0]), int(y + w[1])), colour, -1)
    return img


# cycle forced accessories so that any set of a few images covers all 19 classes
_FORCED = ("glasses", "hat", "earring", "necklace", "open_mouth")


LAYOUTS = ("course", "2025", "release")  # how ``generate`` lays the files out (the module docstring)
# The release's part PNGs overlap as real annotations do: the skin runs under the features painted
# after it, the hair under the hat, the ears under the earrings. Painting them in class order, later
# over earlier, gives the index mask back; painting them in any other order does not.
_UNDER = {1: (2, 3, 4, 5, 6, 7, 10, 11, 12), 8: (15,), 9: (15,), 13: (14,)}


def _write_release_face(out: Path, face: int, img: np.ndarray, mask: np.ndarray) -> None:
    """One face as the CelebAMask-HQ release holds it: the image at twice the mask's size, one
    binary PNG per part present."""
    big = cv2.resize(img, (img.shape[1] * 2, img.shape[0] * 2), interpolation=cv2.INTER_LINEAR)
    (out / IMAGE_DIR).mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(out / IMAGE_DIR / f"{face}.jpg"), big, [cv2.IMWRITE_JPEG_QUALITY, 92])
    parts = out / ANNO_DIR / str(face // 2000)
    parts.mkdir(parents=True, exist_ok=True)
    for cls, part in enumerate(PARTS, start=1):
        binary = np.isin(mask, (cls, *_UNDER.get(cls, ())))
        if (mask == cls).any():
            Image.fromarray(binary.astype(np.uint8) * 255, mode="L").save(parts / f"{face:05d}_{part}.png")


def generate(out: str | Path, n_train: int = 800, n_val: int = 200, n_test: int = 100,
             size: int = 128, seed: int = 0, layout: str = "course", split_files: bool = True,
             mirrored: float = 0.0) -> Path:
    """Write a synthetic set under ``out``; the same seed gives the same faces in every layout.

    ``layout`` is one of ``LAYOUTS``: ``course`` (``train/train_image`` + ``train/train_mask``, ``val``,
    ``test/test_image``), ``2025`` (the 2025 release: ``train/images`` + ``train/masks`` holding the
    train and val faces, unlabeled ``test/images``) or ``release`` (the full CelebAMask-HQ release:
    ``size``-px part PNGs under 2x-size images, every face annotated, and with ``split_files`` the
    id mapping and partition list that give its official split). ``mirrored``: the fraction of the
    training masks whose left/right labels are exchanged, the face left as it is, as in the few percent
    of a real release's masks (``synthetic.json`` lists them)."""
    if layout not in LAYOUTS:
        raise ValueError(f"layout {layout!r}: expected one of {', '.join(LAYOUTS)}")
    out = Path(out)
    splits = (("train", n_train, EASY, True), ("val", n_val, HARD, True), ("test", n_test, HARD, False))
    partition, face = [], 0
    swapped = set(np.random.default_rng([seed, 7]).choice(n_train, round(mirrored * n_train), replace=False).tolist())
    for split_index, (split, n, difficulty, with_mask) in enumerate(splits):
        folder = {"course": split, "2025": "train" if with_mask else "test"}.get(layout, "")
        folders = DATA_LAYOUTS["course" if layout == "course" else "generic"]
        img_dir, mask_dir = folders.image_dir(out, folder), folders.mask_dirs(out, folder)[0]
        for i in range(n):
            rng = np.random.default_rng([seed, split_index, i])
            img, mask = draw_face(rng, size, difficulty, frozenset({_FORCED[i % len(_FORCED)]}))
            if split == "train" and i in swapped:
                mask = FLIP_LUT[mask]
            if layout == "release":
                _write_release_face(out, face, img, mask)
                partition.append(f"{face} {split_index}")
                face += 1
                continue
            name = f"{i}" if layout == "course" else f"{split}_{i}"  # the 2025 layout merges two splits
            img_dir.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(img_dir / f"{name}.jpg"), img, [cv2.IMWRITE_JPEG_QUALITY, 92])
            if with_mask:
                mask_dir.mkdir(parents=True, exist_ok=True)
                write_mask(mask, mask_dir / f"{name}.png")
    if layout == "release" and split_files:
        # CelebA's files are numbered from 1 and the HQ faces are a shuffled subset of them
        order = np.random.default_rng([seed, 99]).permutation(face) * 3 + 1
        (out / MAPPING_FILE).write_text("idx         orig_idx    orig_file\n" + "".join(
            f"{hq:<12d}{orig - 1:<12d}{orig:06d}.jpg\n" for hq, orig in enumerate(order)))
        (out / PARTITION_FILE).write_text("".join(
            f"{order[int(hq)]:06d}.jpg {code}\n" for hq, code in (line.split() for line in partition)))
    meta = {"generator": "trainable.synthetic", "seed": seed, "size": size, "layout": layout,
            "n_train": n_train, "n_val": n_val, "n_test": n_test, "mirrored_train": sorted(swapped)}
    (out / "synthetic.json").write_text(json.dumps(meta, indent=2) + "\n")
    return out


def ensure_synthetic(size: int = 128, seed: int = 0, n_train: int = 800, n_val: int = 200,
                     n_test: int = 100) -> Path:
    """The built-in synthetic set for these settings, generated once into the cache.

    Safe when several trials start at once: one generates under a lock into a temporary folder
    and renames it into place; the others wait and reuse it.
    """
    base = cache_root()
    root = base / f"synthetic-{size}px-seed{seed}-{n_train}-{n_val}-{n_test}"
    if (root / "synthetic.json").is_file():
        return root
    base.mkdir(parents=True, exist_ok=True)
    with open(base / f".{root.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (root / "synthetic.json").is_file():
            # a folder without synthetic.json is what an older, killed run left: replaced
            with replacing(root, replace_folder=True) as tmp:
                generate(tmp, n_train, n_val, n_test, size, seed)
    return root


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m trainable.synthetic", description=__doc__.split("\n")[0])
    p.add_argument("out", help="output folder (created; existing files with the same names are replaced)")
    p.add_argument("--n-train", type=int, default=800)
    p.add_argument("--n-val", type=int, default=200)
    p.add_argument("--n-test", type=int, default=100)
    p.add_argument("--size", type=int, default=128, help="image side in pixels")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--layout", choices=LAYOUTS, default="course",
                   help="course layout, the 2025 release's (train + unlabeled test), or the full CelebAMask-HQ "
                        "release's (per-part masks under 2x images)")
    p.add_argument("--no-split-files", action="store_true",
                   help="release layout: leave out the files that give the official split")
    p.add_argument("--mirrored", type=float, default=0.0,
                   help="fraction of the training masks with their left/right labels exchanged (e.g. 0.03)")
    args = p.parse_args(argv)
    if not 0 <= args.mirrored <= 1:
        p.error("--mirrored must be a fraction between 0 and 1")
    for name in ("n_train", "n_val", "n_test"):
        if getattr(args, name) < 0:
            p.error(f"--{name.replace('_', '-')} must be >= 0")
    if args.size < 32:
        p.error("--size must be at least 32 pixels")
    generate(args.out, args.n_train, args.n_val, args.n_test, args.size, args.seed, args.layout,
             not args.no_split_files, args.mirrored)
    print(f"wrote {args.n_train} train, {args.n_val} val and {args.n_test} test faces "
          f"({args.size} px, seed {args.seed}, {args.layout} layout) to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
