import os
import shutil
import stat

import cv2
import numpy as np
import pytest
from PIL import Image

from trainable.data import CACHE_NAME, DataError, FaceParsingDataset, find_split, read_image, read_mask, scan_split

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


def _damage(root, kind):
    img, msk = root / TRAIN_IMG, root / TRAIN_MASK
    if kind == "image without mask":
        (msk / "3.png").unlink()
        return "3.jpg: image without mask"
    if kind == "mask without image":
        (img / "4.jpg").unlink()
        return "4.png: mask without image"
    if kind == "corrupt jpeg":
        (img / "2.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
        return "2.jpg: unreadable or truncated image"
    if kind == "truncated jpeg":
        data = (img / "2.jpg").read_bytes()
        (img / "2.jpg").write_bytes(data[: len(data) // 2])
        return "2.jpg: unreadable or truncated image"
    if kind == "truncated png":
        data = (msk / "5.png").read_bytes()
        (msk / "5.png").write_bytes(data[: len(data) // 2])
        return "5.png: unreadable or truncated mask"
    if kind == "values outside 0..18":
        m = read_mask(msk / "6.png").copy()
        m[0, 0] = 255
        Image.fromarray(m, "L").save(msk / "6.png")
        return "6.png: mask values [255] outside 0..18"
    if kind == "rgb mask":
        Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(msk / "7.png")
        return "7.png: is an RGB colour mask"
    if kind == "size mismatch":
        cv2.imwrite(str(img / "8.jpg"), np.zeros((80, 64, 3), np.uint8))
        return "8.jpg: image is 64x80 but its mask is 64x64"
    if kind == "empty split":
        for p in img.iterdir():
            p.unlink()
        for p in msk.iterdir():
            p.unlink()
        return "split 'train' is empty"
    if kind == "missing split":
        shutil.rmtree(root / "train")
        return "no 'train' split; expected train/train_image"
    if kind == "missing mask folder":
        shutil.rmtree(msk)
        return "found images but no mask folder"
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", [
    "image without mask", "mask without image", "corrupt jpeg", "truncated jpeg", "truncated png",
    "values outside 0..18", "rgb mask", "size mismatch", "empty split", "missing split", "missing mask folder",
])
def test_every_bad_input_is_named_with_its_file(tiny_data, kind):
    expected = _damage(tiny_data, kind)
    with pytest.raises(DataError) as e:
        scan_split(tiny_data, "train")
    assert expected in str(e.value)
    assert not (tiny_data / CACHE_NAME).exists()  # nothing cached from a bad pass


def test_all_problems_are_listed_together(tiny_data):
    expected = [_damage(tiny_data, k) for k in ("image without mask", "rgb mask", "corrupt jpeg")]
    with pytest.raises(DataError) as e:
        scan_split(tiny_data, "train")
    assert len(e.value.problems) == 3
    for line in expected:
        assert line in str(e.value)


def test_non_image_files_are_ignored_with_a_note(tiny_data):
    (tiny_data / TRAIN_IMG / "notes.txt").write_text("hello")
    (tiny_data / TRAIN_IMG / ".DS_Store").write_text("")
    info = scan_split(tiny_data, "train")
    assert len(info) == 10
    assert any("notes.txt: not an image, ignored" in n for n in info.notes)


def test_missing_root():
    with pytest.raises(DataError, match="data folder not found"):
        scan_split("/nonexistent/data", "train")
