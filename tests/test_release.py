"""The full CelebAMask-HQ release as downloaded (per-part binary PNGs under 1024 px images): its
parts combined into index masks once, into the cache, with its official split or a held-out one."""

from __future__ import annotations

import hashlib
import json
import os
import re

import numpy as np
import pytest
from PIL import Image

from trainable.config import DataConfig
from trainable.decode import read_mask
from trainable.folders import DataError
from trainable.release import ANNO_DIR, IMAGE_DIR, MAPPING_FILE, PARTITION_FILE, combine_parts, prepare
from trainable.scan import cache_root
from trainable.sources import data_root
from trainable.splits import train_and_val
from trainable.synthetic import generate

FACES = {"n_train": 8, "n_val": 3, "n_test": 2, "size": 64, "seed": 3}


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    """The same faces in the course layout: the index masks the release's parts must give back."""
    return generate(tmp_path_factory.mktemp("course") / "data", **FACES)


@pytest.fixture
def release(tmp_path):
    return generate(tmp_path / "release", layout="release", **FACES)


def test_parts_painted_in_class_order_give_back_each_index_mask(course, release):
    out = prepare(release)
    # train faces 0..7, then val 8..10, then test 11..12: the official split puts each where it was drawn
    for split, first, n in (("train", 0, 8), ("val", 8, 3), ("test", 11, 2)):
        names = sorted(int(p.stem) for p in (out / split / "masks").iterdir())
        assert names == list(range(first, first + n))
        for i in range(n):
            expected = read_mask(course / split / f"{split}_mask" / f"{i}.png") if split != "test" else None
            got = read_mask(out / split / "masks" / f"{first + i}.png")
            if expected is not None:
                assert np.array_equal(got, expected), f"{split} face {first + i}"
            with Image.open(out / split / "images" / f"{first + i}.jpg") as im:
                assert im.size == (128, 128)  # the release's image, twice the mask's size, linked not copied
            assert (out / split / "images" / f"{first + i}.jpg").is_symlink()
    # the order matters: the skin part runs under the eyes, so painting it last would erase them
    skin = np.asarray(Image.open(release / ANNO_DIR / "0" / "00000_skin.png"))
    assert (skin[read_mask(course / "train" / "train_mask" / "0.png") == 4] == 255).all()


@pytest.mark.parametrize("parts, expected", [
    # skin under the nose, hair over the skin, the hat over the hair: each later part wins
    ({"skin": [[0, 255, 255], [0, 255, 255]], "nose": [[0, 0, 255], [0, 0, 0]],
      "hair": [[255, 255, 0], [0, 0, 0]], "hat": [[255, 0, 0], [0, 0, 0]]}, [[14, 13, 2], [0, 1, 1]]),
    # the hair (13) is painted after the nose (2), so it wins where both are set, whatever the dict order
    ({"hair": [[255, 255, 255], [0, 0, 0]], "nose": [[0, 255, 0], [0, 255, 0]]}, [[13, 13, 13], [0, 2, 0]]),
    # a part stored as 0/1 rather than 0/255, and one as RGB (the script reads channel 0)
    ({"l_eye": [[1, 0, 0], [0, 0, 0]], "cloth": [[[0, 0, 0]] * 3, [[200, 200, 200]] * 3]}, [[4, 0, 0], [18, 18, 18]]),
])
def test_combine_parts_table(tmp_path, parts, expected):
    paths = {}
    for name, rows in parts.items():
        paths[name] = tmp_path / f"00000_{name}.png"
        pixels = np.array(rows, np.uint8)
        Image.fromarray(pixels, mode="RGB" if pixels.ndim == 3 else "L").save(paths[name])
    mask, problems = combine_parts(paths)
    assert problems == [] and mask.tolist() == expected


def test_without_the_split_files_every_face_trains_and_validation_is_held_out(release):
    (release / MAPPING_FILE).unlink()
    notes: list[str] = []
    root = data_root(DataConfig(root=str(release)), notes)
    assert sorted(os.listdir(root / "train" / "masks")) and not (root / "val").exists()
    assert "only" not in notes[-1] and "no split files" in notes[-1] and "train 13" in notes[-1]
    assert any(f"found {PARTITION_FILE} but not {MAPPING_FILE}" in n for n in notes)
    held: list[str] = []
    train, val = train_and_val(root, DataConfig(root=str(release)), held)
    assert len(train) + len(val) == 13 and len(val) == 1 and "held out for validation" in held[0]


def test_converted_once_and_again_when_the_release_changes(release):
    out = prepare(release)
    stamp = (out / "release.json").stat().st_mtime_ns
    assert prepare(release) == out and (out / "release.json").stat().st_mtime_ns == stamp  # reused
    part = release / ANNO_DIR / "0" / "00000_hat.png"
    if not part.exists():
        part = next((release / ANNO_DIR / "0").glob("00000_*.png"))
    Image.fromarray(np.zeros((64, 64), np.uint8), mode="L").save(part)
    os.utime(part, ns=(stamp + 10**9, stamp + 10**9))
    assert prepare(release) == out and (out / "release.json").stat().st_mtime_ns != stamp
    assert json.loads((out / "release.json").read_text())["official_split"]


@pytest.mark.parametrize("damage, expected", [
    ("wrong size", "part is 32x32 but the face's other parts are 64x64"),
    ("not binary", "not a binary part mask (values [0, 7, 255])"),
    ("no annotations", f"found {IMAGE_DIR} but no {ANNO_DIR} folder"),
    ("no parts", "no part PNGs for face 3"),
    ("image too small", "image is 48x48 but its parts are 64x64"),
])
def test_a_damaged_release_is_refused_naming_the_file(release, damage, expected, tmp_path):
    part = release / ANNO_DIR / "0" / "00002_nose.png"
    if damage == "wrong size":
        Image.fromarray(np.zeros((32, 32), np.uint8), mode="L").save(part)
    elif damage == "not binary":
        pixels = np.zeros((64, 64), np.uint8)
        pixels[:4], pixels[4:8] = 255, 7
        Image.fromarray(pixels, mode="L").save(part)
    elif damage == "no annotations":
        (release / ANNO_DIR).rename(tmp_path / "elsewhere")
    elif damage == "no parts":
        for p in (release / ANNO_DIR / "0").glob("00003_*.png"):
            p.unlink()
    else:
        Image.new("RGB", (48, 48)).save(release / IMAGE_DIR / "2.jpg")
    with pytest.raises(DataError, match=re.escape(expected)) as raised:
        prepare(release)
    if damage in ("wrong size", "not binary"):
        assert str(part) in str(raised.value)
    key = hashlib.sha1(str(release.resolve()).encode()).hexdigest()[:16]
    assert not [p.name for p in cache_root().iterdir() if key in p.name and p.is_dir()]  # nothing half-converted
