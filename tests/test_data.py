import os
import shutil
import stat

import cv2
import numpy as np
import pytest
from PIL import Image

from trainable.audit import MIRRORED_POLICIES
from trainable.classes import FLIP_LUT
from trainable.config import DataConfig
from trainable.dataset import FaceParsingDataset
from trainable.decode import read_image, read_mask
from trainable.errors import UserError
from trainable.folders import DataError, find_split
from trainable.scan import CACHE_NAME, scan_split
from trainable.splits import holdout_names, train_and_val

TRAIN_IMG, TRAIN_MASK = "train/train_image", "train/train_mask"


def test_course_layout_pairs_by_stem_and_computes_stats(tiny_data):
    info = scan_split(tiny_data, "train")
    assert len(info) == 10
    assert [os.path.basename(p).split(".")[0] for p in info.images] == \
           [os.path.basename(p).split(".")[0] for p in info.masks]
    pixels = np.concatenate([read_image(p).reshape(-1, 3) for p in info.images]) / 255.0
    assert info.mean == pytest.approx(pixels.mean(0).tolist(), abs=1e-6)
    assert info.std == pytest.approx(pixels.std(0).tolist(), abs=1e-6)
    counts = sum(np.bincount(read_mask(p).ravel(), minlength=19) for p in info.masks)
    assert info.class_pixels == counts.tolist()
    assert info.mask_sizes == [[64, 64]]


@pytest.mark.parametrize("mask_name", ["masks", "labels"])
def test_generic_layout(tiny_data, tmp_path, mask_name):
    root = tmp_path / "generic"
    shutil.copytree(tiny_data / TRAIN_IMG, root / "train/images")
    shutil.copytree(tiny_data / TRAIN_MASK, root / f"train/{mask_name}")
    img_dir, mask_dir = find_split(root, "train")
    assert (img_dir.name, mask_dir.name) == ("images", mask_name)
    assert len(scan_split(root, "train")) == 10


def test_test_split_without_masks(tiny_data):
    info = scan_split(tiny_data, "test", with_masks=False)
    assert len(info) == 3 and info.masks is None


def test_stats_are_cached_and_invalidated_when_files_change(tiny_data):
    first = scan_split(tiny_data, "train")
    assert (tiny_data / CACHE_NAME).is_file()
    # a cached answer is returned without reading the images: damage one without touching its stat
    victim = tiny_data / TRAIN_IMG / "0.jpg"
    st = victim.stat()
    data = bytearray(victim.read_bytes())
    data[200:260] = bytes(60)
    victim.write_bytes(bytes(data))
    os.utime(victim, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert scan_split(tiny_data, "train").mean == first.mean
    # adding a file changes the fingerprint: the split is read again
    shutil.copy(tiny_data / TRAIN_IMG / "1.jpg", tiny_data / TRAIN_IMG / "new.jpg")
    shutil.copy(tiny_data / TRAIN_MASK / "1.png", tiny_data / TRAIN_MASK / "new.png")
    assert len(scan_split(tiny_data, "train")) == 11


def test_read_only_data_folder_caches_elsewhere(tiny_data, tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root ignores folder permissions")
    tiny_data.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        scan_split(tiny_data, "train", cache_dir=str(tmp_path / "c"))
    finally:
        tiny_data.chmod(stat.S_IRWXU)
    assert list((tmp_path / "c").glob("stats-*.json"))


def test_unwritable_cache_location_falls_back(tiny_data, tmp_path):
    (tiny_data / CACHE_NAME).mkdir()  # the data-side cache cannot be written as a file
    scan_split(tiny_data, "train", cache_dir=str(tmp_path / "c"))
    assert list((tmp_path / "c").glob("stats-*.json"))


def test_image_larger_than_mask_is_resized_to_it(tiny_data):
    big = tiny_data / TRAIN_IMG / "0.jpg"
    cv2.imwrite(str(big), cv2.resize(cv2.imread(str(big)), (128, 128)))
    info = scan_split(tiny_data, "train")
    ds = FaceParsingDataset(info.images, info.masks, lambda image, mask: {"image": image, "mask": mask})
    image, mask = ds[info.images.index(str(big))]
    assert image.shape == (64, 64, 3) and mask.shape == (64, 64)


def _release_2025(tiny_data, root):
    """The 2025 release's layout: train/images + train/masks and unlabeled test/images, no val."""
    shutil.copytree(tiny_data / TRAIN_IMG, root / "train/images")
    shutil.copytree(tiny_data / TRAIN_MASK, root / "train/masks")
    shutil.copytree(tiny_data / "test/test_image", root / "test/images")
    return root


def test_holdout_is_a_fraction_chosen_by_name_whatever_the_order():
    names = [f"{i}.jpg" for i in range(40)]
    held = holdout_names(names, 0.1)
    assert len(held) == 4 and held == holdout_names(list(reversed(names)), 0.1)
    assert len(set(holdout_names([*names, *(f"{i}.jpg" for i in range(40, 44))], 0.1)) & set(held)) >= 3  # stable
    assert len(holdout_names(names[:3], 0.1)) == 1  # at least one
    with pytest.raises(DataError, match=r"data.val_fraction=1 holds out 3 of 3 training pairs and leaves none"):
        holdout_names(names[:3], 1.0)


def test_data_without_a_validation_split_holds_out_training_pairs(tiny_data, tmp_path):
    root = _release_2025(tiny_data, tmp_path / "release")
    notes: list[str] = []
    train, val = train_and_val(root, DataConfig(root=str(root), val_fraction=0.2), notes)
    assert (len(train), len(val)) == (8, 2) and not set(train.images) & set(val.images)
    assert (len(train.orientations), len(val.orientations)) == (8, 2)  # every per-pair list split alike
    assert sorted(train.images + val.images) == sorted(scan_split(root, "train").images)
    assert [os.path.basename(p) for p in val.images] == holdout_names(scan_split(root, "train").images, 0.2)
    assert [os.path.splitext(os.path.basename(p))[0] for p in val.masks] == \
           [os.path.splitext(os.path.basename(p))[0] for p in val.images]  # pairs kept together
    assert "no validation split; 2 of 10 training pairs are held out" in notes[0]
    listed = tmp_path / "holdout.txt"
    listed.write_text("3.jpg\n7.jpg\n")
    _, val = train_and_val(root, DataConfig(root=str(root), holdout=str(listed)))
    assert sorted(os.path.basename(p) for p in val.images) == ["3.jpg", "7.jpg"]  # the experiment's list wins
    train, val = train_and_val(tiny_data, DataConfig(root=str(tiny_data)))
    assert (len(train), len(val)) == (10, 5)  # a data set with its own validation split keeps it


def test_a_search_writes_its_holdout_and_the_audit_into_the_experiment(tiny_data, tmp_path):
    from search_spaces.driver import new_record
    from search_spaces.driver.search import _write_data_lists

    root = _release_2025(tiny_data, tmp_path / "release")
    mirrored = root / "train/masks/4.png"
    Image.fromarray(FLIP_LUT[np.asarray(Image.open(mirrored))]).save(mirrored)
    record = new_record("augmentation", name="exp", data=str(root), overrides={"data.mirrored": "fix"})
    (tmp_path / "exp").mkdir()
    _write_data_lists(tmp_path / "exp", record.config)
    assert record.config.data.holdout == str(tmp_path / "exp" / "holdout.txt")
    assert (tmp_path / "exp" / "holdout.txt").read_text().split() == holdout_names(scan_split(root, "train").images,
                                                                                  0.1)
    assert (tmp_path / "exp" / "mirrored.txt").read_text().splitlines() == ["# data.mirrored=fix", str(mirrored)]
    assert Image.open(tmp_path / "exp" / "mirrored.png").format == "PNG"  # the finding as a contact sheet


@pytest.mark.parametrize("policy", ["keep", "fix", "drop"])
def test_the_data_check_says_what_the_search_does_with_the_mirrored_masks(tiny_data, tmp_path, capsys, policy):
    from search_spaces.driver import new_record
    from search_spaces.driver.search import preflight

    mirrored = tiny_data / "train/train_mask/4.png"
    Image.fromarray(FLIP_LUT[np.asarray(Image.open(mirrored))]).save(mirrored)
    record = new_record("augmentation", name="exp", data=str(tiny_data), overrides={"data.mirrored": policy})
    preflight(record.config)
    notes = [line for line in capsys.readouterr().out.splitlines() if "mirrored" in line]
    assert notes[0].startswith("note: 1 of 10 training masks have their left/right labels mirrored")
    assert notes[1] == f"note: data.mirrored={policy} {MIRRORED_POLICIES[policy]}"


def test_two_training_images_with_one_stem_are_refused_not_one_picked(tiny_data):
    image = tiny_data / "train/train_image/3.jpg"
    shutil.copyfile(image, image.with_suffix(".png"))
    with pytest.raises(UserError, match=r"3\.jpg and 3\.png share the stem '3'"):
        scan_split(tiny_data, "train")
